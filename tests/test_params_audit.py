"""dvc.yaml is a contract: each stage reads the params keys it declares, and nothing else.

Every stage runs here in process, on tiny digits, exactly as dvc.yaml's cmd runs it, while a
hook on the params models records each field read (as a dotted path). A competition's block is
plain data in Params, read only through `Params.competition_keys()` and the block's own
validation (competitions/block.py): the models those return are recorded under
`competitions.<name>`. A read must be covered by one of the stage's declared `params` (a key, or
a section above it), or be named in the stage's `READS_UNTRACKED`: knobs that change no output
(worker counts, where a lock lives), each with its reason beside it in the stage's module. A new
knob read without a declaration fails here.
"""

import shlex

import pytest
import yaml
from helpers import REPO, TINY, merge
from pydantic import BaseModel

from imgcomp import params as params_module
from imgcomp import pipeline

ITEM = {"model": "lenet", "fold": "0"}


def _paths(node, prefix: str, out: dict) -> None:
    """id(model instance) -> (its dotted path, the instance), for the whole params tree. The
    instance is kept, so that its id is never reused by another object while the map lives."""
    if isinstance(node, BaseModel):
        out[id(node)] = (prefix, node)
        for name in type(node).model_fields:
            _paths(node.__dict__.get(name), f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, BaseModel):
                _paths(value, f"{prefix}.{key}", out)
    elif isinstance(node, list):
        for k, value in enumerate(node):
            _paths(value, f"{prefix}.{k}", out)


@pytest.fixture
def record_reads(monkeypatch):
    """Patch every params model class so a field read on a loaded Params is recorded."""
    reads: set[str] = set()
    where: dict[int, tuple[str, BaseModel]] = {}
    real_load = params_module.load_params

    def load(path="params.yaml"):
        p = real_load(path)
        _paths(p, "", where)
        return p

    monkeypatch.setattr(params_module, "load_params", load)
    monkeypatch.setattr("imgcomp.__main__.load_params", load)  # bound there at its import
    from imgcomp.competitions import block as block_module

    def registered(real, prefix):  # the block's models, read under competitions.<name>
        def wrapper(*args, **kwargs):
            out = real(*args, **kwargs)
            _paths(out, prefix(*args, **kwargs), where)
            return out
        return wrapper

    monkeypatch.setattr(params_module.Params, "competition_keys", registered(
        params_module.Params.competition_keys, lambda self: f"competitions.{self.competition}"))
    monkeypatch.setattr(block_module, "load_block", registered(
        block_module.load_block, lambda name, *a, **k: f"competitions.{name}"))

    classes = {c for m in (params_module, block_module) for c in vars(m).values()
               if isinstance(c, type) and issubclass(c, BaseModel) and c is not BaseModel}
    for cls in classes:
        real = cls.__getattribute__

        def hook(self, name, real=real):
            value = real(self, name)
            entry = where.get(id(self))
            if entry is not None and entry[1] is self and name in type(self).model_fields \
                    and not (name == "competitions" and entry[0] == ""):  # blocks: as above
                prefix = entry[0]
                inner = isinstance(value, BaseModel) or (
                    isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()))
                if not inner:  # a leaf (or a plain list/dict): the read itself
                    reads.add(f"{prefix}.{name}" if prefix else name)
            return value

        monkeypatch.setattr(cls, "__getattribute__", hook)
    return reads


def covered(read: str, declared: list[str]) -> bool:
    return any(read == d or read.startswith(d + ".") for d in declared)


def expand(text: str, competition: str) -> str:
    return (text.replace("${competition}", competition).replace("${item.model}", ITEM["model"])
            .replace("${item.fold}", ITEM["fold"]))


def test_each_stage_reads_only_what_it_declares(tmp_path, monkeypatch, record_reads):
    from imgcomp.__main__ import run

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    # one pseudo-label round: the pseudo stage trains and predicts, and ensemble and package
    # gather its members
    params = merge(merge(base, TINY), {"folds": {"run": [0]}, "pseudo": {"rounds": 1}})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "requirements.lock").write_text((REPO / "requirements.lock").read_text())
    monkeypatch.chdir(tmp_path)
    problems = []
    for stage in pipeline.STAGES:
        d = pipeline.declaration(stage)
        declared = [expand(k, params["competition"]) for k in d["params"]
                    if isinstance(k, str)]  # {file: [keys]}: another stage's output, not params
        module = __import__(f"imgcomp.stages.{stage}", fromlist=["DVC"])
        untracked = [expand(k, params["competition"])
                     for k in getattr(module, "READS_UNTRACKED", ())]
        record_reads.clear()
        run(shlex.split(expand(d["cmd"], params["competition"]))[3:])
        assert record_reads, f"{stage}: no read recorded (is the hook working?)"
        for read in sorted(record_reads):
            if not covered(read, declared + untracked):
                problems.append(f"{stage} reads {read}, declared {declared}")
        for key in untracked:  # an untracked key that also changes output would hide a rerun
            assert not covered(key, declared), f"{stage}: {key} both declared and untracked"
    assert not problems, "\n".join(problems)
