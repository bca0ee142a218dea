"""What the stages hand each other: one typed definition per artifact, which its one writer
and every reader go through (cards.py, formats.py, prepared.py, reports.py), and the one place
their files and folders are named (names.py). Plain data: no torch, no stage, no params."""
