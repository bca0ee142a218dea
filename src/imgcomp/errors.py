"""The one exception a user can cause and fix: printed as a single line, exit code 2."""


class UserError(Exception):
    """A problem with the user's data, params or environment; the message says what to fix."""


def git_without_commit(start: str = ".") -> str | None:
    """The git repository around `start` when it has no commit yet, else None. dvclive (train's
    logger) fails there with a traceback ("Empty git repo"); `check` and train say this instead."""
    import subprocess
    from pathlib import Path

    here = Path(start).resolve()
    for d in (here, *here.parents):
        if (d / ".git").exists():
            try:
                head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=d,
                                      capture_output=True)
            except OSError:  # no git program: dvclive's own reader is all there is
                return None
            return str(d) if head.returncode != 0 else None
    return None


def no_commit_message(repo: str) -> str:
    return (f"the git repository {repo} has no commit yet, and DVC's training logger needs one; "
            "commit once (git add -A && git commit -m start), then run again")
