"""The competition engine: a competition is its params block (block.py), applied to its data.

`Competition` fetches the raw files (downloads what has a URL, verifies what the user placed,
or builds digits from scikit-learn), extracts them safely, and lists them through the block
(layout.py) into the manifest's rows, the classes and the submission format. Nothing here
names a competition: digits, cat_dog, food11 and palm are preset blocks in params.yaml, and
`python -m imgcomp new <slug>` writes the block of any other (new.py).
"""
