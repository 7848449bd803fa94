#!/usr/bin/env python3
"""Every relative link in README.md and docs/*.md names an existing file, and every #anchor a heading of it.

    tests/check_doc_links.py [REPO_ROOT]     (run by ctest; prints each broken link and exits 1)
"""
import re, sys, pathlib
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
def anchor(t):
    a = t.strip().lower(); a = re.sub(r"[^\w\- ]", "", a); return a.replace(" ", "-")
def anchors(p):
    out=set(); code=False
    for l in p.read_text().split("\n"):
        if l.startswith("```"): code = not code
        m = re.match(r"^(#{1,6}) (.*)$", l)
        if m and not code: out.add(anchor(m.group(2)))
    return out
bad=0
for f in [root/"README.md"]+sorted((root/"docs").glob("*.md")):
    code=False
    for n,l in enumerate(f.read_text().split("\n"),1):
        if l.startswith("```"): code = not code; continue
        if code: continue
        for m in re.finditer(r"\[([^\]]*)\]\(([^)\s]+)\)", l):
            t=m.group(2)
            if re.match(r"^(https?:|mailto:)", t): continue
            path, _, a = t.partition("#")
            target = f if path=="" else (f.parent/path)
            if not target.exists():
                print(f"{f.relative_to(root)}:{n}: missing {t}"); bad+=1; continue
            if a and target.suffix==".md" and a not in anchors(target):
                print(f"{f.relative_to(root)}:{n}: no anchor {t}"); bad+=1
print("bad links:", bad)
sys.exit(1 if bad else 0)
