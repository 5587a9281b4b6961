"""USER and --chown resolution through the image's own /etc/passwd and /etc/group (never the host's)."""

from __future__ import annotations

from dataclasses import dataclass

from .rootfs.paths import resolve_in_root


@dataclass(frozen=True)
class ExecUser:
    """A USER resolved through the image's /etc/passwd and /etc/group: who a RUN step runs as."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    home: str = "/"


class UnknownUser(LookupError):
    pass


def _read_db(root: str, path: str) -> list[list[str]]:
    try:
        with open(resolve_in_root(root, path), encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []


def _find_user(root: str, user: str) -> list[str] | None:
    """The passwd entry for a user name or numeric id, or None."""
    for fields in _read_db(root, "/etc/passwd"):
        if len(fields) >= 4 and (fields[0] == user or (user.isdigit() and fields[2] == user)):
            return fields
    return None


def resolve_user(root: str, spec: str) -> ExecUser:
    """`user[:group]` as docker resolves it: names through the image's files, ids as they are."""
    user, _, group = (spec or "0").partition(":")
    entry = _find_user(root, user)
    if entry is None and not user.isdigit():
        raise UnknownUser(f"unable to find user {user}: no matching entries in passwd file")
    uid = int(entry[2]) if entry else int(user)
    gid = int(entry[3]) if entry and entry[3].isdigit() else 0
    home = entry[5] if entry and len(entry) > 5 and entry[5] else "/"
    groups_db = _read_db(root, "/etc/group")
    if group:
        gid = resolve_group(groups_db, group)
        extra: tuple[int, ...] = ()
    else:
        # Supplementary groups: the groups that list the user by name (only when no group was forced).
        name = entry[0] if entry else None
        extra = tuple(sorted({int(g[2]) for g in groups_db
                              if name and len(g) >= 4 and g[2].isdigit() and name in g[3].split(",")}))
    groups = tuple(dict.fromkeys((gid, *extra)))
    return ExecUser(uid, gid, groups, home)


def resolve_group(groups_db: list[list[str]], group: str) -> int:
    for fields in groups_db:
        if len(fields) >= 3 and (fields[0] == group or (group.isdigit() and fields[2] == group)):
            return int(fields[2])
    if group.isdigit():
        return int(group)
    raise UnknownUser(f"unable to find group {group}: no matching entries in group file")


def resolve_chown(root: str, spec: str) -> tuple[int, int]:
    """--chown=user[:group]: like USER, except that a user alone gives its own primary group...
    and a numeric user without an entry gets gid = uid (docker's rule for --chown)."""
    user, sep, group = spec.partition(":")
    entry = _find_user(root, user)
    if entry is not None:
        uid, gid = int(entry[2]), int(entry[3])
    elif user.isdigit():
        uid = gid = int(user)
    else:
        raise UnknownUser(f"unable to find user {user}: no matching entries in passwd file")
    if sep and group:
        gid = resolve_group(_read_db(root, "/etc/group"), group)
    return uid, gid


def resolve_mkdir_owner(root: str, spec: str) -> tuple[int, int]:
    """The owner BuildKit gives the directories WORKDIR creates as the current USER (its file operations' rule,
    unlike RUN's): `root` and numeric ids need no passwd file (a uid alone is also the gid); a name is looked up
    in this root's /etc/passwd for its uid and primary gid, and a name that is not there (or no passwd file at
    all) gives 0:0 rather than an error. A group, when given, is looked up the same way in /etc/group; a group
    name that is not there leaves the gid as the user part set it."""
    user, _, group = spec.partition(":")
    if user == "root":
        uid = gid = 0
    elif user.isdigit():
        uid = gid = int(user)
    else:
        entry = next((f for f in _read_db(root, "/etc/passwd") if len(f) >= 4 and f[0] == user), None)
        uid, gid = (int(entry[2]), int(entry[3])) if entry and entry[2].isdigit() and entry[3].isdigit() else (0, 0)
    if group == "root":
        gid = 0
    elif group.isdigit():
        gid = int(group)
    elif group:
        found = next((f for f in _read_db(root, "/etc/group") if len(f) >= 3 and f[0] == group), None)
        if found is not None and found[2].isdigit():
            gid = int(found[2])
    return uid, gid
