"""The action's inputs, read and split the way docker/build-push-action reads its own.

action.yml passes each input to the step as `INPUT_<NAME>` (upper case, `-` → `_`) through `env:` (a composite
action gets no INPUT_* variables of its own), so actions-toolkit's `get_input` reads them; we ask it for the
underscore spelling because a `-` in an environment variable's name does not survive every shell.
"""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import dataclass

from actions_toolkit import core

from dockyard.errors import UsageError

from ..common.levels import parse_lint_level
from ..common.scan import fail_on_vuln_level, scan_enabled
from ..common.supplychain import sign_mode, sign_options


def split_list(text: str, *, ignore_comma: bool = False) -> list[str]:
    """build-push-action's getInputList (docker/actions-toolkit Util.getList): the value is read as CSV, so a
    record is a line unless a quoted field spans lines; items are the record's fields, or with `ignore_comma`
    the whole record (fields joined again by `,`), trimmed, empty ones dropped."""
    items: list[str] = []
    for record in csv.reader(io.StringIO(text), skipinitialspace=False):
        if ignore_comma:
            items.append(",".join(record))
        else:
            items.extend(record)
    return [item.strip() for item in items if item.strip()]


def _bool(name: str) -> bool:
    # get_boolean_input accepts exactly YAML 1.2's true/True/TRUE/false/False/FALSE, as @actions/core does;
    # an input left out is false (action.yml's defaults say so too).
    if not _text(name):
        return False
    try:
        return bool(core.get_boolean_input(name.replace("-", "_")))
    except TypeError:
        raise UsageError(f"{core.get_input(name.replace('-', '_'))!r} is not a boolean", subject=f"input {name}",
                         hint="use true or false") from None


def _text(name: str) -> str:
    return str(core.get_input(name.replace("-", "_")))


@dataclass(frozen=True)
class ActionInputs:
    context: str = "."
    file: str = ""
    tags: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    build_args: tuple[str, ...] = ()
    build_contexts: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    push: bool = False
    target: str = ""
    no_cache: bool = False
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    secret_envs: tuple[str, ...] = ()
    secret_files: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    registry_mirrors: tuple[str, ...] = ()
    lint: str = "error"
    extra_args: tuple[str, ...] = ()
    # The supply chain (integrations/common/supplychain.py): as build-push-action's inputs, and the signature.
    sbom: str = ""
    provenance: str = ""
    attests: tuple[str, ...] = ()
    sign: str = ""  # "", key or keyless
    sign_key: str = ""  # the private key itself (a secret), for sign: key
    sign_key_passphrase: str = ""
    sign_options: tuple[str, ...] = ()  # more --sign attributes (a private Sigstore instance's URLs)
    # The vulnerability scan (integrations/common/scan.py); scan-sarif: where the SARIF for code scanning goes.
    scan: bool = False
    fail_on_vuln: str = ""
    ignore_unfixed: bool = False
    vuln_ignore_file: str = ""
    vuln_db: str = ""
    vuln_db_url: str = ""
    scan_sarif: str = ""
    # The merge of a distributed build (either switches the action from building to assembling an index):
    sources: tuple[str, ...] = ()  # image references
    merge_digests: str = ""  # a directory of the build jobs' digest files, for the first of `images`

    @property
    def merges(self) -> bool:
        """Whether the action assembles an index from images already pushed rather than building one."""
        return bool(self.sources or self.merge_digests)

    @classmethod
    def from_environment(cls) -> ActionInputs:
        """The inputs as build-push-action splits them: tags, platforms, secret-envs and sources by comma too;
        values that may hold commas (build args, build contexts, labels, annotations, secrets, cache and output
        specs) by line only."""
        lint = parse_lint_level(_text("lint"))
        try:
            extra = tuple(shlex.split(_text("extra-args")))
        except ValueError as exc:
            raise UsageError(f"cannot split it as a shell would: {exc}", subject="input extra-args") from None

        def lines(name: str) -> tuple[str, ...]:
            return tuple(split_list(_text(name), ignore_comma=True))

        def items(name: str) -> tuple[str, ...]:
            return tuple(split_list(_text(name)))

        return cls(
            context=_text("context") or ".", file=_text("file"), tags=items("tags"), images=items("images"),
            build_args=lines("build-args"), build_contexts=lines("build-contexts"), labels=lines("labels"),
            annotations=lines("annotations"),
            push=_bool("push"), target=_text("target"), no_cache=_bool("no-cache"),
            cache_from=lines("cache-from"), cache_to=lines("cache-to"), secrets=lines("secrets"),
            secret_envs=items("secret-envs"), secret_files=lines("secret-files"), outputs=lines("outputs"),
            platforms=items("platforms"), insecure_registries=items("insecure-registries"),
            registry_mirrors=items("registry-mirrors"), lint=lint, extra_args=extra, sources=items("sources"),
            merge_digests=_text("merge-digests").strip(), sbom=_text("sbom").strip(),
            provenance=_text("provenance").strip(), attests=lines("attests"), sign=sign_mode(_text("sign")),
            sign_key=_text("sign-key"), sign_key_passphrase=_text("sign-key-passphrase"),
            sign_options=sign_options(_text("sign-options")), scan=scan_enabled(_text("scan")),
            fail_on_vuln=fail_on_vuln_level(_text("fail-on-vuln")), ignore_unfixed=_bool("ignore-unfixed"),
            vuln_ignore_file=_text("vuln-ignore-file").strip(), vuln_db=_text("vuln-db").strip(),
            vuln_db_url=_text("vuln-db-url").strip(), scan_sarif=_text("scan-sarif").strip())


def key_value(items: tuple[str, ...], input_name: str) -> list[tuple[str, str]]:
    """The `KEY=VALUE` items of secrets / secret-envs / secret-files, split at the first `=` as
    build-push-action does. A bad item is named by its position: it may be a secret's value."""
    pairs = []
    for number, item in enumerate(items, 1):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"item {number} is not KEY=VALUE", subject=f"input {input_name}",
                             hint="one KEY=VALUE per line, e.g. github_token=${{ secrets.GITHUB_TOKEN }}")
        pairs.append((key.strip(), value))
    return pairs
