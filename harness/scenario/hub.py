"""`weights: hf://OWNER/REPO[@REVISION]`: a model in the local Hugging Face cache, found offline.

The cache is where `hf download` (huggingface_hub) puts a repository: HF_HUB_CACHE, else HF_HOME/hub, else
~/.cache/huggingface/hub. Nothing is downloaded here (local_files_only): a model that is not in the cache is a
scenario error that names the command which fetches it. The snapshot folder is what the worker loads, as a local
folder holding model.safetensors (PersonaPlex's and Kyutai's repositories alike; Mimi beside it when present).
"""

from __future__ import annotations

import re
from typing import Optional

PREFIX = "hf://"
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class HubError(Exception):
    pass


def is_hub_id(weights: str) -> bool:
    return weights.startswith(PREFIX)


def split_id(weights: str) -> tuple[str, Optional[str]]:
    repo, _, revision = weights[len(PREFIX):].partition("@")
    if not _REPO.match(repo):
        raise HubError(f"{weights!r} is not hf://OWNER/REPO (e.g. hf://nvidia/personaplex-7b-v1)")
    return repo, revision or None


def fetch_command(repo: str, revision: Optional[str]) -> str:
    return f"hf download {repo}" + (f" --revision {revision}" if revision else "")


def resolve_hub_weights(weights: str) -> str:
    """The local snapshot folder of `hf://OWNER/REPO[@REVISION]`; HubError (one line) when it is not cached."""
    repo, revision = split_id(weights)
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # a dependency of the harness: only a broken install lacks it
        raise HubError(f"{weights}: huggingface_hub is not installed ({exc})") from None
    try:
        return snapshot_download(repo, revision=revision, local_files_only=True)
    except LocalEntryNotFoundError:
        raise HubError(f"{repo} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}); nothing is "
                       f"downloaded without asking: fetch it with `{fetch_command(repo, revision)}` (a gated model: "
                       "accept its licence on huggingface.co and `hf auth login` first)") from None
    except (OSError, ValueError) as exc:
        raise HubError(f"{weights}: cannot read it from the local Hugging Face cache: {exc}") from None
