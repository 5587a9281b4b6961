"""The workflow run's identity, which the provenance records as its builder id, and how the action signs.

The builder id is the run attempt's URL, `$GITHUB_SERVER_URL/OWNER/REPO/actions/runs/RUN_ID/attempts/N`, the
form docker/actions-toolkit's `workflowRunURL(true)` makes for build-push-action: a re-run of a job is another
build. Keyless signing needs the job's OIDC token, which GitHub offers only to a job with `permissions: id-token:
write` (ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN are then set; dockyard asks for the token with them)."""

from __future__ import annotations

from collections.abc import Mapping

from dockyard.errors import UsageError

DEFAULT_SERVER = "https://github.com"
TOKEN_REQUEST_VARIABLES = ("ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")


def builder_id(environ: Mapping[str, str]) -> str:
    """The run attempt's URL; "" outside a workflow run (no repository or run id to name)."""
    repository, run_id = environ.get("GITHUB_REPOSITORY", ""), environ.get("GITHUB_RUN_ID", "")
    if not repository or not run_id:
        return ""
    server = (environ.get("GITHUB_SERVER_URL") or DEFAULT_SERVER).rstrip("/")
    attempt = environ.get("GITHUB_RUN_ATTEMPT") or "1"
    return f"{server}/{repository}/actions/runs/{run_id}/attempts/{attempt}"


def check_keyless(environ: Mapping[str, str]) -> None:
    """Keyless signing needs the job's OIDC token: a UsageError naming `sign` when the job cannot ask for one."""
    missing = [name for name in TOKEN_REQUEST_VARIABLES if not environ.get(name)]
    if missing:
        raise UsageError(f"keyless signing needs the job's OIDC token, and {' and '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not set", subject="input sign",
                         hint="give the job `permissions: id-token: write` (and the packages/contents permissions "
                              "it already needs), or sign with a key: sign: key and sign-key")
