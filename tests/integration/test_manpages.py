# SPDX-License-Identifier: GPL-2.0-only
"""The manual pages render without warnings, and say what --help says: every
command of utracectl and every option of it and of utraced is documented, and
the page documents no long option that a command does not have."""
import os
import re
import subprocess
import unittest

from harness import UTRACECTL, UTRACED

MAN = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "man"))
PAGES = ["utraced.8", "utracectl.8", "utraced.conf.5", "utrace-protocol.7"]
OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def render(page, width=80):
    env = dict(os.environ, MANWIDTH=str(width), LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
    p = subprocess.run(["man", "--warnings", "-l", os.path.join(MAN, page)], capture_output=True,
                       text=True, env=env, timeout=60)
    return p


def sections(text):
    """{SECTION: {SUBSECTION or "": [lines]}} of a page rendered as plain text."""
    out, sec, sub = {}, None, ""
    for line in text.splitlines():
        if re.match(r"^[A-Z][A-Z ]+$", line):
            sec, sub = line.strip(), ""
            out[sec] = {"": []}
        elif sec and re.match(r"^   \S", line):
            sub = line.strip()
            out[sec][sub] = []
        elif sec:
            out[sec][sub].append(line)
    return out


def item_options(lines):
    """Options named in the tags of option items (lines indented by 7 that start
    with a dash), long and short."""
    opts = set()
    for line in lines:
        if re.match(r"^ {7}-", line):
            tag = re.split(r"\s{2,}|\t", line.strip())[0]
            opts |= set(OPTION.findall(tag))
    return opts


def help_options(text):
    """Options a --help text names on its usage line and in its option lines."""
    opts = set()
    for line in text.splitlines():
        if line.startswith("Usage:"):
            opts |= set(OPTION.findall(line))
        elif line.lstrip().startswith("-"):
            opts |= set(OPTION.findall(re.split(r"\s{2,}", line.strip())[0]))
    return opts


def plain(page):
    p = render(page, 200)
    p2 = subprocess.run(["col", "-b"], input=p.stdout, capture_output=True, text=True)
    return p2.stdout


class ManPages(unittest.TestCase):
    def test_pages_render_without_warnings(self):
        for page in PAGES:
            with self.subTest(page=page):
                p = render(page)
                self.assertEqual((p.returncode, p.stderr), (0, ""))
                self.assertIn("NAME", p.stdout)
                self.assertIn("SEE ALSO", p.stdout)
                g = subprocess.run(["groff", "-ww", "-z", "-man", os.path.join(MAN, page)],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual((g.returncode, g.stderr), (0, ""))

    def test_utracectl_commands_and_options_match_help(self):
        main_help = subprocess.run([UTRACECTL, "--help"], capture_output=True, text=True).stdout
        block = main_help.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
        commands = [line.split()[0] for line in block.splitlines() if line.strip()]
        self.assertIn("attach", commands)
        page = sections(plain("utracectl.8"))

        global_help = help_options(main_help.split("Options:", 1)[1])
        global_page = item_options(page["OPTIONS"][""])
        self.assertEqual(global_help - global_page, set(), "undocumented global options")
        self.assertEqual({o for o in global_page - global_help if o.startswith("--")}, set(),
                         "documented global options that utracectl does not have")

        documented = {sub.split()[0]: lines for sub, lines in page["COMMANDS"].items() if sub}
        common = set(OPTION.findall(" ".join(page["COMMANDS"][""])))
        for cmd in commands:
            with self.subTest(command=cmd):
                self.assertIn(cmd, documented, f"utracectl {cmd} has no section in utracectl(8)")
                h = subprocess.run([UTRACECTL, cmd, "--help"], capture_output=True, text=True)
                self.assertEqual(h.returncode, 0, h.stderr)
                in_help = help_options(h.stdout)
                heading = next(s for s in page["COMMANDS"] if s and s.split()[0] == cmd)
                in_page = item_options(documented[cmd]) | common | set(OPTION.findall(heading))
                if cmd == "trace":       # takes every option of attach
                    in_page |= item_options(documented["attach"])
                self.assertEqual(in_help - in_page, set(), f"undocumented options of {cmd}")
                self.assertEqual({o for o in item_options(documented[cmd]) - in_help
                                  if o.startswith("--")}, set(),
                                 f"utracectl(8) documents options {cmd} does not have")

    def test_utraced_options_are_documented(self):
        h = subprocess.run([UTRACED, "--help"], capture_output=True, text=True)
        self.assertEqual(h.returncode, 0)
        page = sections(plain("utraced.8"))
        self.assertEqual(help_options(h.stdout.split("Options:", 1)[1]) -
                         item_options(page["OPTIONS"][""]), set())
