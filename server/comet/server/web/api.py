"""The HTTP JSON API under /api/v1/: each handler reads its input, calls the
``Console`` and answers JSON. Errors are ``{"error": {"code", "message"}}``
(``web.errors``); authorization happened before the handler (``web.app``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from comet.server.errors import InvalidRequestError
from comet.server.rpc import convert
from comet.server.store.accounts import Principal
from comet.server.store.jobs import JobClassification, JobQuery, JobStatus
from comet.server.web.access import Visitor
from comet.server.web.console import (
    PAGE_SIZE,
    Console,
    chosen_role,
    job_query,
    parse_role,
)
from comet.server.web.json_view import jsonable
from comet.server.web.routes import Route

PREFIX = "/api/v1"


def _ok(value: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(jsonable(value), status_code=status)


def _admin(visitor: Visitor) -> Principal:
    assert visitor.principal is not None  # the table let no anonymous caller through
    return visitor.principal


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        raise InvalidRequestError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return data


def _str(data: dict[str, Any], name: str, default: str = "") -> str:
    value = data.get(name, default)
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name!r} must be a string")
    return value


def _int(data: dict[str, Any], name: str) -> int:
    value = data.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidRequestError(f"{name!r} must be a whole number, 0 or more")
    return value


def _page(request: Request) -> int:
    value = request.query_params.get("page", "1")
    return int(value) if value.isdigit() else 1


# The CSV export's rows at most, and how many its first read takes: a small first
# batch starts the file soon; the rest comes in one more read (each read is a round
# trip to the database, which on a busy machine costs more than the rows).
CSV_ROWS = 1000
CSV_FIRST = 100
CSV_COLUMNS = (
    "job_id", "username", "device_id", "classification", "status", "started_at",
    "ended_at", "item_id", "vault_id", "bytes", "files", "uploaded_bytes", "error_message",
)  # fmt: skip


_CLASSIFICATIONS = {int(c): c.name for c in JobClassification}
_STATUSES = {int(c): c.name for c in JobStatus}


def _csv_row(row: tuple[Any, ...]) -> list[Any]:
    """A row of ``EXPORT_COLUMNS`` as the CSV's columns: names for the codes, ISO times."""
    (job_id, username, device_id, classification, status, started, ended, *rest) = row
    return [
        job_id, username, device_id,
        _CLASSIFICATIONS.get(classification, str(classification)),
        _STATUSES.get(status, str(status)),
        started.isoformat() if started else "", ended.isoformat() if ended else "", *rest,
    ]  # fmt: skip


class Api:
    def __init__(self, console: Console, access_source: Any) -> None:
        self._c = console
        self._source = access_source  # Request -> the client's address

    def routes(self) -> list[Route]:
        table = [
            ("GET", "/dashboard", self.dashboard),
            ("GET", "/server", self.server),
            ("GET", "/users", self.users),
            ("POST", "/users", self.add_user),
            ("GET", "/users/{username}", self.user),
            ("DELETE", "/users/{username}", self.delete_user),
            ("POST", "/users/{username}/password", self.reset_password),
            ("POST", "/users/{username}/totp-reset", self.reset_totp),
            ("PUT", "/users/{username}/policy", self.assign_policy),
            ("GET", "/devices", self.devices),
            ("POST", "/devices/{device_id}/backup", self.backup),
            ("POST", "/devices/{device_id}/cancel", self.cancel),
            ("POST", "/devices/{device_id}/revoke", self.revoke),
            ("GET", "/jobs", self.jobs),
            ("GET", "/jobs.csv", self.jobs_csv),
            ("GET", "/jobs/{job_id}", self.job),
            ("GET", "/policies", self.policies),
            ("GET", "/buckets", self.buckets),
            ("GET", "/audit", self.audit),
            ("GET", "/api-keys", self.api_keys),
            ("POST", "/api-keys", self.create_api_key),
            ("DELETE", "/api-keys/{key_id}", self.revoke_api_key),
            ("GET", "/me/devices", self.my_devices),
            ("GET", "/me/jobs", self.my_jobs),
            ("GET", "/me/jobs/{job_id}", self.my_job),
            ("POST", "/me/devices/{device_id}/backup", self.my_backup),
            ("POST", "/policies", self.create_policy),
            ("PUT", "/policies/{policy_id}", self.put_policy),
            ("DELETE", "/policies/{policy_id}", self.delete_policy),
            ("GET", "/admins", self.admins),
            ("PUT", "/users/{username}/role", self.set_role),
            ("PUT", "/users/{username}/max-devices", self.set_max_devices),
            ("POST", "/devices/{device_id}/retention", self.retention),
            ("POST", "/devices/{device_id}/verify", self.verify),
        ]
        return [Route(m, PREFIX + p, h, api=True) for m, p, h in table]

    # ------------------------------------------------------------------ fleet

    async def dashboard(self, request: Request, v: Visitor) -> Response:
        """Devices online/offline, jobs of the last 24 h by status, devices needing
        attention, storage per bucket, server instances."""
        return _ok(await self._c.dashboard())

    async def server(self, request: Request, v: Visitor) -> Response:
        """Version, instances, database and schema revision."""
        return _ok(await self._c.server())

    async def users(self, request: Request, v: Visitor) -> Response:
        """Users, ``per_page`` (default 50, at most 500) a page; ``q`` searches the
        username, ``page`` picks the page."""
        per_page = request.query_params.get("per_page", "")
        return _ok(
            await self._c.users(
                search=request.query_params.get("q", ""),
                page=_page(request),
                per_page=int(per_page) if per_page.isdigit() else PAGE_SIZE,
            )
        )

    async def add_user(self, request: Request, v: Visitor) -> Response:
        """Creates a user: ``username``, ``password``, ``role``, ``max_devices``."""
        data = await _body(request)
        user = await self._c.add_user(
            _admin(v),
            username=_str(data, "username"),
            password=_str(data, "password"),
            role=parse_role(_str(data, "role", "user")),
            max_devices=_int(data, "max_devices"),
            source=v.source,
        )
        return _ok(user, 201)

    async def user(self, request: Request, v: Visitor) -> Response:
        """A user with their devices, Protected Items, Storage Vaults, schedules and
        recent jobs (no vault secrets)."""
        return _ok(await self._c.user(request.path_params["username"]))

    async def delete_user(self, request: Request, v: Visitor) -> Response:
        """Deletes a user and their buckets (``?keep_data=true`` keeps the buckets)."""
        keep = request.query_params.get("keep_data", "") in ("1", "true")
        kept = await self._c.admin.delete_user(
            _admin(v), request.path_params["username"], keep_data=keep, source=v.source
        )
        return _ok({"kept_bucket_ids": kept})

    async def reset_password(self, request: Request, v: Visitor) -> Response:
        """Sets a new password: ``password``, ``force``, ``revoke_devices``."""
        data = await _body(request)
        revoked = await self._c.reset_password(
            _admin(v),
            request.path_params["username"],
            password=_str(data, "password"),
            force=bool(data.get("force")),
            revoke_devices=bool(data.get("revoke_devices")),
            source=v.source,
        )
        return _ok({"devices_revoked": revoked, "data_kept_readable": False})

    async def reset_totp(self, request: Request, v: Visitor) -> Response:
        """Turns the user's two-factor authentication off (a lost authenticator)."""
        was_enabled = await self._c.admin.reset_totp(
            _admin(v), request.path_params["username"], source=v.source
        )
        return _ok({"was_enabled": was_enabled})

    async def assign_policy(self, request: Request, v: Visitor) -> Response:
        """Assigns a policy (``policy_id``; empty: the default policy applies)."""
        data = await _body(request)
        await self._c.admin.assign_policy(
            _admin(v), request.path_params["username"], _str(data, "policy_id"), source=v.source
        )
        return _ok({})

    async def devices(self, request: Request, v: Visitor) -> Response:
        """Devices, 50 a page; ``q`` searches, ``online=online|offline`` filters."""
        q = request.query_params
        return _ok(
            await self._c.devices(
                search=q.get("q", ""), online=q.get("online", ""), page=_page(request)
            )
        )

    async def backup(self, request: Request, v: Visitor) -> Response:
        """Back up now: the device's first scheduled item x vault; returns the job id."""
        job_id = await self._c.backup_now(
            _admin(v), request.path_params["device_id"], source=v.source
        )
        return _ok({"job_id": job_id}, 202)

    async def cancel(self, request: Request, v: Visitor) -> Response:
        """Cancels a running job on the device: ``job_id`` (none: the device's latest
        running job); returns the job id."""
        data = await _body(request)
        job_id = await self._c.cancel(
            _admin(v), request.path_params["device_id"], _str(data, "job_id"), source=v.source
        )
        return _ok({"job_id": job_id})

    async def retention(self, request: Request, v: Visitor) -> Response:
        """Runs retention on the device: ``vault_id`` (none: the vault of the device's
        first schedule, or the account's only vault); returns the job id."""
        data = await _body(request)
        job_id = await self._c.retention(
            _admin(v), request.path_params["device_id"], vault_id=_str(data, "vault_id"),
            source=v.source,
        )  # fmt: skip
        return _ok({"job_id": job_id}, 202)

    async def verify(self, request: Request, v: Visitor) -> Response:
        """Verifies a Storage Vault from the device: ``vault_id`` (as for retention),
        ``read_data`` (read every chunk too); returns the job id."""
        data = await _body(request)
        job_id = await self._c.verify(
            _admin(v), request.path_params["device_id"], vault_id=_str(data, "vault_id"),
            read_data=bool(data.get("read_data")), source=v.source,
        )  # fmt: skip
        return _ok({"job_id": job_id}, 202)

    async def revoke(self, request: Request, v: Visitor) -> Response:
        """Revokes a device: its credential stops working and its connection ends."""
        await self._c.admin.revoke_device(
            _admin(v), request.path_params["device_id"], source=v.source
        )
        return _ok({})

    async def jobs(self, request: Request, v: Visitor) -> Response:
        """Job history, newest first. Filters: user, device, item, vault, status,
        classification, since, until; ``limit`` and ``page`` (the previous page's
        ``next_page_token``)."""
        return _ok(await self._c.jobs(job_query(dict(request.query_params))))

    async def jobs_csv(self, request: Request, v: Visitor) -> Response:
        """The same history (same filters) as CSV, up to 1000 rows (``limit``), streamed:
        the first 100, then the rest."""
        params = dict(request.query_params)
        limit = params.pop("limit", "")
        wanted = min(int(limit) if limit.isdigit() and int(limit) > 0 else CSV_ROWS, CSV_ROWS)
        params["limit"] = str(min(wanted, CSV_FIRST))
        query = job_query(params)
        # The first batch before the response starts: a bad filter (unknown user) is
        # still a JSON error, not a cut-off file.
        first = await self._c.job_rows(query)
        return StreamingResponse(
            self._csv_batches(query, first, wanted),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": 'attachment; filename="comet-jobs.csv"'},
        )

    async def _csv_batches(
        self, query: JobQuery, batch: tuple[list[tuple[Any, ...]], str], wanted: int
    ) -> AsyncIterator[str]:
        """The header and each batch of rows, fetched after the previous one (keyset:
        each batch resumes from the last row's page token)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        sent = 0
        while True:
            rows, token = batch
            for row in rows[: wanted - sent]:
                writer.writerow(_csv_row(row))
            sent += min(len(rows), wanted - sent)
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if sent >= wanted or not token:
                return
            batch = await self._c.job_rows(
                replace(query, page_size=wanted - sent, page_token=token)
            )

    async def job(self, request: Request, v: Visitor) -> Response:
        """A job and its log."""
        job, lines = await self._c.job(request.path_params["job_id"])
        return _ok({"job": job, "log": lines})

    async def policies(self, request: Request, v: Visitor) -> Response:
        """Every policy."""
        return _ok(await self._c.policies())

    async def buckets(self, request: Request, v: Visitor) -> Response:
        """ "Comet Server" buckets with their usage and quota, 50 a page (``page``)."""
        return _ok(await self._c.buckets(page=_page(request)))

    async def audit(self, request: Request, v: Visitor) -> Response:
        """The audit log, newest first; ``action`` filters, ``limit`` (at most 1000);
        ``before`` (the last event_id) pages on."""
        q = request.query_params
        limit = q.get("limit", "200")
        before = q.get("before", "")
        events = await self._c.audit(
            action=q.get("action", ""), limit=int(limit) if limit.isdigit() else 200,
            before_id=int(before) if before.isdigit() else 0,
        )  # fmt: skip
        return _ok(events)

    # ------------------------------------------------------------------ API keys

    async def api_keys(self, request: Request, v: Visitor) -> Response:
        """The caller's own API keys (never the keys themselves)."""
        return _ok(await self._c.admin.api_keys(_admin(v)))

    async def create_api_key(self, request: Request, v: Visitor) -> Response:
        """A new key of the caller: ``name``, ``role`` (default: the caller's own).
        The key is in this reply only."""
        data = await _body(request)
        admin = _admin(v)
        role_text = _str(data, "role")
        role = parse_role(role_text) if role_text else admin.role
        created = await self._c.admin.create_api_key(
            admin, name=_str(data, "name"), role=role, source=v.source
        )
        return _ok({"key": created.key, "info": created.record}, 201)

    async def revoke_api_key(self, request: Request, v: Visitor) -> Response:
        """Revokes one of the caller's keys."""
        record = await self._c.admin.revoke_api_key(
            _admin(v), request.path_params["key_id"], source=v.source
        )
        return _ok(record)

    # ------------------------------------------------------------------ own account

    async def my_devices(self, request: Request, v: Visitor) -> Response:
        """The signed-in user's own devices."""
        return _ok(await self._c.devices(user_id=_admin(v).user_id, page=_page(request)))

    async def my_jobs(self, request: Request, v: Visitor) -> Response:
        """The signed-in user's own job history (same filters as /jobs, no user)."""
        query = job_query(dict(request.query_params), user_id=_admin(v).user_id)
        return _ok(await self._c.jobs(query))

    async def my_job(self, request: Request, v: Visitor) -> Response:
        """One of the user's own jobs and its log."""
        job, lines = await self._c.job(request.path_params["job_id"], user_id=_admin(v).user_id)
        return _ok({"job": job, "log": lines})

    async def my_backup(self, request: Request, v: Visitor) -> Response:
        """Back up now on one of the user's own devices (any of their items)."""
        job_id = await self._c.backup_now(
            _admin(v), request.path_params["device_id"], source=v.source, own=True
        )
        return _ok({"job_id": job_id}, 202)

    # ------------------------------------------------------------------ policies

    async def create_policy(self, request: Request, v: Visitor) -> Response:
        """Creates a policy: the body is the Policy message as JSON (as in a
        ``comet-admin policy create --file``), with its ``name``."""
        policy = convert.policy_message(await _body(request))
        policy.policy_id, policy.version = "", 0
        return _ok(await self._c.admin.put_policy(_admin(v), policy, source=v.source), 201)

    async def put_policy(self, request: Request, v: Visitor) -> Response:
        """Replaces a policy whole (the same body); a ``version`` other than 0 must be
        the stored one, so an edit racing another is refused (409), not merged."""
        policy = convert.policy_message(await _body(request))
        policy.policy_id = request.path_params["policy_id"]
        return _ok(await self._c.admin.put_policy(_admin(v), policy, source=v.source))

    async def delete_policy(self, request: Request, v: Visitor) -> Response:
        """Deletes a policy; its users fall back to the default policy."""
        deleted = await self._c.admin.delete_policy(
            _admin(v), request.path_params["policy_id"], source=v.source
        )
        return _ok(deleted)

    # ------------------------------------------------------------------ admins

    async def admins(self, request: Request, v: Visitor) -> Response:
        """The administrators with their role and two-factor state."""
        return _ok(await self._c.admins())

    async def set_role(self, request: Request, v: Visitor) -> Response:
        """Gives an account another ``role`` (user, super, operator, auditor); never
        one's own, never away from the last SUPER admin. Its sessions end."""
        data = await _body(request)
        previous = await self._c.admin.set_role(
            _admin(v), request.path_params["username"], chosen_role(_str(data, "role")),
            source=v.source,
        )  # fmt: skip
        return _ok({"previous_role": previous})

    async def set_max_devices(self, request: Request, v: Visitor) -> Response:
        """Sets the account's device limit: ``max_devices`` (0: unlimited)."""
        data = await _body(request)
        user = await self._c.admin.set_max_devices(
            _admin(v), request.path_params["username"], _int(data, "max_devices"),
            source=v.source,
        )  # fmt: skip
        return _ok(user)
