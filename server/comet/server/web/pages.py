"""The console's pages: server-rendered HTML over the same ``Console`` calls as the
API. Forms post back (with the session's CSRF token) and redirect, so every page
works without JavaScript; htmx only confirms destructive actions and refreshes the
live parts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from comet.server.authorization import Caller
from comet.server.errors import InvalidRequestError, ServerError
from comet.server.web.access import Access, Visitor
from comet.server.web.console import (
    FORM_NUMBERS,
    POLICY_FLAGS,
    Console,
    admin_role,
    chosen_role,
    job_query,
    login_secret,
    parse_role,
    policy_form_values,
    role_name,
)
from comet.server.web.json_view import jsonable
from comet.server.web.routes import Route
from comet.server.web.session_cookie import (
    CSRF_FIELD,
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    new_signin_nonce,
)

JOB_FILTERS = ("user", "device", "item", "vault", "status", "classification", "since", "until")
ADMINS = (Caller.SUPER, Caller.OPERATOR, Caller.AUDITOR)
AUDIT_PAGE = 200


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _back(path: str, message: str = "", error: str = "") -> RedirectResponse:
    query = urlencode({k: v for k, v in (("msg", message), ("err", error)) if v})
    return RedirectResponse(path + ("?" + query if query else ""), status_code=303)


class Pages:
    def __init__(
        self,
        console: Console,
        access: Access,
        templates: Environment,
        *,
        secure: bool,
        live_every: float = 1.0,
    ) -> None:
        self._c = console
        self._access = access
        self._t = templates
        self._secure = secure
        self._live_every = live_every

    def routes(self) -> list[Route]:
        table = [
            ("GET", "/", self.home),
            ("GET", "/signin", self.signin_form),
            ("POST", "/signin", self.signin),
            ("POST", "/signout", self.signout),
            ("GET", "/dashboard", self.dashboard),
            ("GET", "/server", self.server),
            ("GET", "/users", self.users),
            ("POST", "/users", self.add_user),
            ("GET", "/users/{username}", self.user),
            ("POST", "/users/{username}/delete", self.delete_user),
            ("POST", "/users/{username}/password", self.reset_password),
            ("POST", "/users/{username}/policy", self.assign_policy),
            ("POST", "/users/{username}/totp-reset", self.reset_totp),
            ("GET", "/devices", self.devices),
            ("POST", "/devices/{device_id}/backup", self.backup),
            ("POST", "/devices/{device_id}/cancel", self.cancel),
            ("POST", "/devices/{device_id}/revoke", self.revoke),
            ("GET", "/jobs", self.jobs),
            ("GET", "/jobs/{job_id}", self.job),
            ("GET", "/jobs/{job_id}/events", self.job_events),
            ("GET", "/audit", self.audit),
            ("GET", "/policies", self.policies),
            ("GET", "/buckets", self.buckets),
            ("GET", "/api-keys", self.api_keys),
            ("POST", "/api-keys", self.create_api_key),
            ("POST", "/api-keys/{key_id}/revoke", self.revoke_api_key),
            ("GET", "/portal", self.portal),
            ("GET", "/portal/jobs/{job_id}", self.portal_job),
            ("GET", "/portal/jobs/{job_id}/events", self.portal_job_events),
            ("POST", "/portal/devices/{device_id}/backup", self.portal_backup),
            ("POST", "/policies", self.create_policy),
            ("GET", "/policies/{policy_id}", self.policy),
            ("POST", "/policies/{policy_id}", self.save_policy),
            ("POST", "/policies/{policy_id}/delete", self.delete_policy),
            ("GET", "/admins", self.admins),
            ("POST", "/admins", self.add_admin),
            ("POST", "/users/{username}/role", self.set_role),
            ("POST", "/users/{username}/edit", self.edit_user),
            ("POST", "/devices/{device_id}/retention", self.retention),
            ("POST", "/devices/{device_id}/verify", self.verify),
        ]
        return [Route(m, p, h, api=False) for m, p, h in table]

    # ------------------------------------------------------------------ rendering

    def render(
        self, request: Request, v: Visitor | None, name: str, http_status: int = 200, **values: Any
    ) -> HTMLResponse:
        caller = v.caller if v else Caller.ANONYMOUS
        html = self._t.get_template(name).render(
            request=request,
            me=v.principal if v else None,
            role=role_name(v.principal.role) if v and v.principal else "",
            is_admin=caller in ADMINS,
            caller=caller.value,
            csrf=self._access.codec.csrf_token(v.session_token) if v and v.session_token else "",
            csrf_field=CSRF_FIELD,
            msg=request.query_params.get("msg", ""),
            err=request.query_params.get("err", ""),
            path=request.url.path,
            **values,
        )
        return HTMLResponse(html, status_code=http_status)

    def error_page(self, request: Request, v: Visitor | None, error: ServerError) -> Response:
        from comet.server.web.errors import http_status

        status = http_status(error)
        if status == 401 and v is not None and v.principal is not None:
            status = 403  # signed in, but this page needs another kind of account
        if status == 401:
            target = "/signin?next=" + quote(request.url.path) + "&err=" + quote(error.message)
            if request.headers.get("HX-Request"):
                # An htmx swap (the devices list's refresh) would follow a 303 and swap the
                # sign-in page into the list: have htmx move the whole window instead.
                return Response(status_code=200, headers={"HX-Redirect": target})
            return RedirectResponse(target, status_code=303)
        if request.method == "POST" and status < 500:
            # A refused form: back to the page it came from, with the reason.
            return _back(_referer_path(request), error=error.message)
        return self.render(request, v, "error.html", status, error=error, code=status)

    # ------------------------------------------------------------------ sign-in

    async def home(self, request: Request, v: Visitor) -> Response:
        if v.caller in ADMINS:
            return RedirectResponse("/dashboard", status_code=303)
        if v.caller is Caller.USER:
            return RedirectResponse("/portal", status_code=303)
        return RedirectResponse("/signin", status_code=303)

    async def signin_form(self, request: Request, v: Visitor) -> Response:
        nonce = request.cookies.get(SIGNIN_COOKIE) or new_signin_nonce()
        response = self.render(
            request, None, "signin.html", nonce=nonce, next=request.query_params.get("next", "")
        )
        response.set_cookie(
            SIGNIN_COOKIE, nonce, httponly=True, secure=self._secure, samesite="strict",
            max_age=3600,
        )  # fmt: skip
        return response

    async def signin(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        nonce = request.cookies.get(SIGNIN_COOKIE, "")
        if not nonce or _text(form, CSRF_FIELD) != nonce:
            return _back("/signin", error="the sign-in form expired: try again")
        username = _text(form, "username").strip()
        try:
            kdf = await self._c.accounts.prelogin(username)
            result = await self._c.accounts.login(
                username,
                await login_secret(_text(form, "password"), kdf),
                source=v.source,
                admin_session=False,
                totp_code=_text(form, "totp").strip(),
                web=True,
            )
        except ServerError as e:
            return _back("/signin", error=e.message)
        next_path = _text(form, "next")
        target = next_path if next_path.startswith("/") and not next_path.startswith("//") else "/"
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            self._access.codec.seal(result.session_token, self._access.now()),
            httponly=True,
            secure=self._secure,
            samesite="strict",
        )
        response.delete_cookie(SIGNIN_COOKIE)
        return response

    async def signout(self, request: Request, v: Visitor) -> Response:
        await self._c.accounts.revoke_session(v.session_token)
        response = _back("/signin", message="signed out")
        response.delete_cookie(SESSION_COOKIE)
        return response

    # ------------------------------------------------------------------ admin pages

    async def dashboard(self, request: Request, v: Visitor) -> Response:
        return self.render(request, v, "dashboard.html", d=await self._c.dashboard())

    async def server(self, request: Request, v: Visitor) -> Response:
        return self.render(request, v, "server.html", s=await self._c.server())

    async def users(self, request: Request, v: Visitor) -> Response:
        q = request.query_params.get("q", "")
        page_text = request.query_params.get("page", "1")
        page = await self._c.users(search=q, page=int(page_text) if page_text.isdigit() else 1)
        policies = await self._c.policies()
        return self.render(request, v, "users.html", page=page, q=q, policies=policies)

    async def add_user(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        max_devices = _text(form, "max_devices") or "0"
        if not max_devices.isdigit():
            raise InvalidRequestError("the device limit is a whole number")
        user = await self._c.add_user(
            v.principal,
            username=_text(form, "username").strip(),
            password=_text(form, "password"),
            role=parse_role(_text(form, "role")),
            max_devices=int(max_devices),
            source=v.source,
        )
        return _back(f"/users/{quote(user.username)}", message=f"user {user.username} added")

    async def user(self, request: Request, v: Visitor) -> Response:
        detail = await self._c.user(request.path_params["username"])
        policies = await self._c.policies()
        return self.render(request, v, "user.html", u=detail, policies=policies)

    async def delete_user(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        name = request.path_params["username"]
        await self._c.admin.delete_user(
            v.principal, name, keep_data=_text(form, "keep_data") == "on", source=v.source
        )
        return _back(_form_back(form, "/users"), message=f"user {name} deleted")

    async def reset_password(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        name = request.path_params["username"]
        revoked = await self._c.reset_password(
            v.principal, name, password=_text(form, "password"),
            force=_text(form, "force") == "on",
            revoke_devices=_text(form, "revoke_devices") == "on", source=v.source,
        )  # fmt: skip
        return _back(
            _form_back(form, f"/users/{quote(name)}"),
            message=f"password reset; {revoked} device(s) revoked",
        )

    async def reset_totp(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        name = request.path_params["username"]
        was_enabled = await self._c.admin.reset_totp(v.principal, name, source=v.source)
        done = "two-factor turned off" if was_enabled else "two-factor was not enabled"
        return _back(f"/users/{quote(name)}", message=done)

    async def assign_policy(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        name = request.path_params["username"]
        await self._c.admin.assign_policy(
            v.principal, name, _text(form, "policy_id"), source=v.source
        )
        return _back(f"/users/{quote(name)}", message="policy assigned")

    async def devices(self, request: Request, v: Visitor) -> Response:
        q = request.query_params
        page_text = q.get("page", "1")
        page = await self._c.devices(
            search=q.get("q", ""),
            online=q.get("online", ""),
            page=int(page_text) if page_text.isdigit() else 1,
        )
        return self.render(
            request, v, "devices.html", page=page, q=q.get("q", ""), online=q.get("online", "")
        )

    async def backup(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        job_id = await self._c.backup_now(
            v.principal, request.path_params["device_id"], source=v.source
        )
        return _back(f"/jobs/{job_id}" if job_id else "/devices", message="backup started")

    async def cancel(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        job_id = await self._c.cancel(
            v.principal, request.path_params["device_id"], _text(form, "job_id"), source=v.source
        )
        return _back(_referer_path(request), message=f"cancel sent to job {job_id}")

    async def retention(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        job_id = await self._c.retention(
            v.principal, request.path_params["device_id"], vault_id=_text(form, "vault_id"),
            source=v.source,
        )  # fmt: skip
        return _back(f"/jobs/{job_id}" if job_id else "/devices", message="retention started")

    async def verify(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        job_id = await self._c.verify(
            v.principal, request.path_params["device_id"], vault_id=_text(form, "vault_id"),
            read_data=_text(form, "read_data") == "on", source=v.source,
        )  # fmt: skip
        return _back(f"/jobs/{job_id}" if job_id else "/devices", message="verify started")

    async def revoke(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        device_id = request.path_params["device_id"]
        await self._c.admin.revoke_device(v.principal, device_id, source=v.source)
        return _back(_referer_path(request), message=f"device {device_id} revoked")

    async def jobs(self, request: Request, v: Visitor) -> Response:
        params = dict(request.query_params)
        page = await self._c.jobs(job_query(params))
        filters = {k: params.get(k, "") for k in JOB_FILTERS}
        given = {k: val for k, val in filters.items() if val}
        csv_query = urlencode(given)
        next_query = urlencode({**given, "page": page.next_page_token})
        return self.render(
            request, v, "jobs.html", page=page, f=filters, csv_query=csv_query,
            next_query=next_query,
        )  # fmt: skip

    async def job(self, request: Request, v: Visitor) -> Response:
        job, lines = await self._c.job(request.path_params["job_id"])
        return self.render(request, v, "job.html", job=job, lines=lines, portal=False)

    async def job_events(self, request: Request, v: Visitor) -> Response:
        return await self._events(request, request.path_params["job_id"], user_id="")

    async def _events(self, request: Request, job_id: str, *, user_id: str) -> Response:
        """Server-Sent Events: ``job`` with the job's state at each change, then
        ``end`` once it ended (the page then reloads for the final log)."""
        await self._c.job(job_id, user_id=user_id)  # 404 now rather than mid-stream
        updates = self._c.job_updates(job_id, user_id=user_id, every=self._live_every)

        async def stream() -> AsyncIterator[str]:
            async for job in updates:
                if await request.is_disconnected():
                    return
                yield f"event: job\ndata: {json.dumps(jsonable(job))}\n\n"
            yield "event: end\ndata: {}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    async def audit(self, request: Request, v: Visitor) -> Response:
        action = request.query_params.get("action", "")
        before = request.query_params.get("before", "")
        events = await self._c.audit(
            action=action, limit=AUDIT_PAGE, before_id=int(before) if before.isdigit() else 0
        )
        full = len(events) == AUDIT_PAGE
        older = urlencode({"action": action, "before": events[-1].id}) if full else ""
        return self.render(request, v, "audit.html", events=events, action=action, older=older)

    async def policies(
        self, request: Request, v: Visitor, form: dict[str, Any] | None = None, error: str = ""
    ) -> Response:
        policies, counts = await self._c.policies_in_use()
        return self.render(
            request, v, "policies.html", 400 if error else 200, policies=policies,
            counts=counts, form=form or policy_form_values(None), flags=POLICY_FLAGS,
            form_error=error,
        )  # fmt: skip

    async def create_policy(self, request: Request, v: Visitor) -> Response:
        values = _policy_form(await request.form())
        assert v.principal is not None
        try:
            policy = self._c.policy_input(**values)
            stored = await self._c.admin.put_policy(v.principal, policy, source=v.source)
        except ServerError as e:  # the form again, as typed, with the reason
            return await self.policies(request, v, form=values, error=e.message)
        return _back(f"/policies/{stored.policy_id}", message=f"policy {stored.name} created")

    async def policy(
        self, request: Request, v: Visitor, form: dict[str, Any] | None = None, error: str = ""
    ) -> Response:
        stored = await self._c.policy(request.path_params["policy_id"])
        _, counts = await self._c.policies_in_use()
        return self.render(
            request, v, "policy.html", 400 if error else 200, policy=stored,
            users=counts.get(stored.policy_id, 0), form=form or policy_form_values(stored),
            flags=POLICY_FLAGS, form_error=error,
        )  # fmt: skip

    async def save_policy(self, request: Request, v: Visitor) -> Response:
        policy_id = request.path_params["policy_id"]
        values = _policy_form(await request.form())
        assert v.principal is not None
        try:
            policy = self._c.policy_input(policy_id=policy_id, **values)
            stored = await self._c.admin.put_policy(v.principal, policy, source=v.source)
        except ServerError as e:
            return await self.policy(request, v, form={"policy_id": policy_id, **values},
                                     error=e.message)  # fmt: skip
        return _back(f"/policies/{stored.policy_id}", message=f"saved (version {stored.version})")

    async def delete_policy(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        deleted = await self._c.admin.delete_policy(
            v.principal, request.path_params["policy_id"], source=v.source
        )
        return _back("/policies", message=f"policy {deleted.name} deleted")

    # ------------------------------------------------------------------ admins

    async def admins(self, request: Request, v: Visitor) -> Response:
        return self.render(request, v, "admins.html", admins=await self._c.admins())

    async def add_admin(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        user = await self._c.add_user(
            v.principal,
            username=_text(form, "username").strip(),
            password=_text(form, "password"),
            role=admin_role(_text(form, "role")),
            max_devices=0,
            source=v.source,
        )
        return _back("/admins", message=f"administrator {user.username} added")

    async def set_role(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        name = request.path_params["username"]
        role = chosen_role(_text(form, "role"))
        await self._c.admin.set_role(v.principal, name, role, source=v.source)
        return _back(
            _form_back(form, f"/users/{quote(name)}"),
            message=f"{name} is now {role_name(role)}",
        )

    async def edit_user(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        name = request.path_params["username"]
        max_devices = _text(form, "max_devices").strip() or "0"
        if not max_devices.isdigit():
            raise InvalidRequestError("the device limit is a whole number (0: unlimited)")
        await self._c.admin.set_max_devices(v.principal, name, int(max_devices), source=v.source)
        return _back(f"/users/{quote(name)}", message="device limit saved")

    async def buckets(self, request: Request, v: Visitor) -> Response:
        page_text = request.query_params.get("page", "1")
        page = await self._c.buckets(page=int(page_text) if page_text.isdigit() else 1)
        return self.render(request, v, "buckets.html", buckets=page.items, page=page)

    async def api_keys(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        keys = await self._c.admin.api_keys(v.principal)
        return self.render(request, v, "api_keys.html", keys=keys, new_key="")

    async def create_api_key(self, request: Request, v: Visitor) -> Response:
        form = await request.form()
        assert v.principal is not None
        role_text = _text(form, "role")
        created = await self._c.admin.create_api_key(
            v.principal,
            name=_text(form, "name"),
            role=parse_role(role_text) if role_text else v.principal.role,
            source=v.source,
        )
        keys = await self._c.admin.api_keys(v.principal)
        # Shown on this response only, never stored: no redirect to a GET.
        return self.render(request, v, "api_keys.html", keys=keys, new_key=created.key)

    async def revoke_api_key(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        await self._c.admin.revoke_api_key(
            v.principal, request.path_params["key_id"], source=v.source
        )
        return _back("/api-keys", message="key revoked")

    # ------------------------------------------------------------------ customer portal

    async def portal(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        devices, jobs = await asyncio.gather(
            self._c.devices(user_id=v.principal.user_id),
            self._c.jobs(job_query({"limit": "50"}, user_id=v.principal.user_id)),
        )
        return self.render(request, v, "portal.html", devices=devices.items, jobs=jobs.jobs)

    async def portal_job(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        job, lines = await self._c.job(request.path_params["job_id"], user_id=v.principal.user_id)
        return self.render(request, v, "job.html", job=job, lines=lines, portal=True)

    async def portal_job_events(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        job_id = request.path_params["job_id"]
        return await self._events(request, job_id, user_id=v.principal.user_id)

    async def portal_backup(self, request: Request, v: Visitor) -> Response:
        assert v.principal is not None
        job_id = await self._c.backup_now(
            v.principal, request.path_params["device_id"], source=v.source, own=True
        )
        return _back(f"/portal/jobs/{job_id}" if job_id else "/portal", message="backup started")


def _policy_form(form: FormData) -> dict[str, Any]:
    """The policy form's fields, as ``Console.policy_input`` takes them."""
    return {
        "name": _text(form, "name").strip(),
        "is_default": _text(form, "is_default") == "on",
        "version": _text(form, "version"),
        "body_json": _text(form, "body_json"),
        "flags": [f for f in POLICY_FLAGS if _text(form, f"flag_{f}") == "on"],
        "numbers": {k: _text(form, k) for k in FORM_NUMBERS},
    }


def _form_back(form: FormData, default: str) -> str:
    """The page a form asks to return to (a path of this site), else ``default``."""
    back = _text(form, "back")
    return back if back.startswith("/") and not back.startswith("//") else default


def _referer_path(request: Request) -> str:
    """The path of the page a form was posted from (same site only), else /."""
    from urllib.parse import urlsplit

    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.url.netloc:
        return "/"
    return referer.path or "/"
