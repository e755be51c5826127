"""Names wherever ids: ``comet-admin`` filters and targets take a device, Protected
Item or Storage Vault by name as well as by id, resolved here against the server's
own records before the request is built."""

from __future__ import annotations

import re
from collections.abc import Iterable

from comet.server.admin_session import Admin, AdminCliError
from comet.v1 import admin_pb2, common_pb2

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)


def looks_like_id(ref: str) -> bool:
    return _UUID.fullmatch(ref) is not None


def _one(ref: str, what: str, user: str, matches: Iterable[str], hint: str) -> str:
    found = sorted(set(matches))
    whose = f" of user {user!r}" if user else ""
    if not found:
        raise AdminCliError(f"no {what} named {ref!r}{whose} ({hint})")
    if len(found) > 1:
        raise AdminCliError(f"{len(found)} {what}s are named {ref!r}{whose}; give --user or the id")
    return found[0]


class AdminNames:
    """Turns names into ids with the admin's session; ids pass through untouched."""

    def __init__(self, admin: Admin) -> None:
        self._admin = admin

    def _call(self, method: str, request: object) -> object:
        return getattr(self._admin.stub, method)(request, metadata=self._admin.metadata, timeout=60)

    def device_id(self, ref: str, *, user: str = "") -> str:
        if not ref or looks_like_id(ref):
            return ref
        reply = self._call("ListDevices", admin_pb2.ListDevicesRequest(username=user))
        assert isinstance(reply, admin_pb2.ListDevicesReply)
        return _one(
            ref,
            "device",
            user,
            (d.device_id for d in reply.devices if ref in (d.name, d.device_id)),
            "see 'comet-admin device list'",
        )

    def _profiles(self, user: str) -> list[common_pb2.Profile]:
        if user:
            names = [user]
        else:
            users = self._call("ListUsers", admin_pb2.ListUsersRequest())
            assert isinstance(users, admin_pb2.ListUsersReply)
            names = [u.username for u in users.users]
        out = []
        for name in names:
            profile = self._call("GetUserProfile", admin_pb2.GetUserProfileRequest(username=name))
            assert isinstance(profile, common_pb2.Profile)
            out.append(profile)
        return out

    def _in_profiles(self, ref: str, user: str, what: str, kind: str) -> str:
        """The id of the one item or vault (``kind``: items, vaults) named ``ref``."""
        if not ref or looks_like_id(ref):
            return ref
        ids = (
            getattr(entry, "item_id" if kind == "items" else "vault_id")
            for profile in self._profiles(user)
            for entry in getattr(profile, kind)
            if entry.name == ref
        )
        return _one(ref, what, user, ids, "see the user's profile")

    def item_id(self, ref: str, *, user: str = "") -> str:
        return self._in_profiles(ref, user, "Protected Item", "items")

    def vault_id(self, ref: str, *, user: str = "") -> str:
        return self._in_profiles(ref, user, "Storage Vault", "vaults")
