"""The dashboard's Starlette app: HTML pages and a JSON API over `platypus.ops.Operations`.

Every route but the login page and the static files needs a principal: a session
cookie from the login form, a bearer token, or an `IdentityProvider`. Every form
post carries the session's CSRF token; a JSON API post authenticated by the
session cookie carries it as ``X-CSRF-Token`` (bearer-token calls need none: a
browser never sends them by itself). Templates are Jinja2 with autoescaping on,
so an event holding HTML is shown as text. Pages are sent with a strict
Content-Security-Policy (no inline script) and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from platypus.ops.actions import (
    InvalidReplayError,
    NotFoundError,
    OperationError,
    Operations,
    Permission,
    PermissionDeniedError,
)
from platypus.ops.auth import SESSION_COOKIE, Authenticator, Principal, Session, check_csrf
from platypus.ops.store import FailureFilter, FailureStatus
from platypus.ops.web import views
from platypus.redaction import personal_values, scrubber
from platypus.safejson import loads as load_json

__all__ = ["create_dashboard"]

_log = structlog.get_logger("platypus.ops.web")

_HERE = Path(__file__).parent
_STATIC = {
    "app.css": ("text/css; charset=utf-8", _HERE / "static" / "app.css"),
    "app.js": ("text/javascript; charset=utf-8", _HERE / "static" / "app.js"),
}
_MAX_FORM = 1_048_576
_SESSION_KEY = "platypus.ops.session"
PAGE_SIZE = 50

_SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]

Handler = Callable[[Request], Awaitable[Response]]


class _HttpError(Exception):
    def __init__(self, status: int, message: str, errors: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = list(errors)


class _SecurityHeaders:
    """Adds the security headers to every answer of the dashboard."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in _SECURITY_HEADERS if n not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Dashboard:
    """The routes, bound to the operations and the authenticator."""

    def __init__(
        self,
        operations: Operations,
        auth: Authenticator,
        *,
        prefix: str = "/ops",
        secure_cookies: bool = False,
    ) -> None:
        self.ops = operations
        self.store = operations.store
        self.auth = auth
        self.prefix = prefix.rstrip("/")
        self.secure = secure_cookies
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
        self.templates.filters["urlq"] = lambda v: quote(str(v), safe="")

    # -- the app ------------------------------------------------------------------

    def app(self) -> ASGIApp:
        """The ASGI app to mount at ``prefix``."""
        page, api, form, api_post = self._page, self._api, self._form_post, self._api_post
        routes = [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", form(self.logout), methods=["POST"]),
            Route("/static/{name}", self.static, methods=["GET"]),
            Route("/", page(self.overview_page), methods=["GET"]),
            Route("/failures", page(self.list_page), methods=["GET"]),
            Route("/failures/{id:int}", page(self.detail_page), methods=["GET"]),
            Route("/failures/{id:int}/reveal", form(self.reveal_page), methods=["POST"]),
            Route("/failures/{id:int}/edit", page(self.edit_page), methods=["GET"]),
            Route("/failures/{id:int}/edit", form(self.edit_replay), methods=["POST"]),
            Route("/failures/{id:int}/replay", form(self.replay_one), methods=["POST"]),
            Route("/failures/{id:int}/discard", form(self.discard_one), methods=["POST"]),
            Route("/replay", form(self.replay_bulk), methods=["POST"]),
            Route("/discard", form(self.discard_bulk), methods=["POST"]),
            Route("/jobs/{job}", page(self.job_page), methods=["GET"]),
            Route("/audit", page(self.audit_page), methods=["GET"]),
            Route("/events", page(self.events_page), methods=["GET"]),
            Route("/api/me", api(self.api_me), methods=["GET"]),
            Route("/api/overview", api(self.api_overview), methods=["GET"]),
            Route("/api/failures", api(self.api_list), methods=["GET"]),
            Route("/api/failures/{id:int}", api(self.api_show), methods=["GET"]),
            Route("/api/failures/{id:int}/reveal", api_post(self.api_reveal), methods=["POST"]),
            Route("/api/failures/{id:int}/replay", api_post(self.api_replay), methods=["POST"]),
            Route("/api/failures/{id:int}/discard", api_post(self.api_discard), methods=["POST"]),
            Route("/api/replay", api_post(self.api_replay_bulk), methods=["POST"]),
            Route("/api/discard", api_post(self.api_discard_bulk), methods=["POST"]),
            Route("/api/jobs/{job}", api(self.api_job), methods=["GET"]),
            Route("/api/audit", api(self.api_audit), methods=["GET"]),
            Route("/api/events", api(self.api_events), methods=["GET"]),
        ]
        return _SecurityHeaders(Starlette(routes=routes))

    # -- who is asking ------------------------------------------------------------

    def _session(self, request: Request) -> Session | None:
        # Looked up once per request: a login is a row in the store.
        if _SESSION_KEY not in request.scope:
            request.scope[_SESSION_KEY] = self.auth.load_session(
                request.cookies.get(SESSION_COOKIE)
            )
        found: Session | None = request.scope[_SESSION_KEY]
        return found

    def _principal(self, request: Request) -> Principal | None:
        found = self.auth.from_headers(request.headers)
        if found is not None:
            return found
        session = self._session(request)
        if session is None or session.user is None:
            return None
        return self.auth.user(session.user)

    def _page(self, handler: Callable[[Request, Principal], Awaitable[Response]]) -> Handler:
        async def run(request: Request) -> Response:
            principal = self._principal(request)
            if principal is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{self.prefix}/login?next={quote(target)}", 303)
            try:
                return await handler(request, principal)
            except _HttpError as exc:
                return self._error_page(request, principal, exc)

        return run

    def _form_post(
        self, handler: Callable[[Request, Principal, dict[str, str]], Awaitable[Response]]
    ) -> Handler:
        async def run(request: Request) -> Response:
            principal = self._principal(request)
            if principal is None:
                return self._refuse(request, 401, "log in first")
            try:
                fields = await self._read_form(request)
                if principal.via != "token" and not check_csrf(
                    self._session(request), fields.get("csrf")
                ):
                    raise _HttpError(403, "the form has expired or did not come from this site")
                return await handler(request, principal, fields)
            except _HttpError as exc:
                return self._error_page(request, principal, exc)

        return run

    def _api(self, handler: Callable[[Request, Principal], Awaitable[Any]]) -> Handler:
        async def run(request: Request) -> Response:
            principal = self._principal(request)
            if principal is None:
                return _unauthorized()
            try:
                return _json(await handler(request, principal))
            except _HttpError as exc:
                return _json({"error": exc.message, "errors": exc.errors}, exc.status)

        return run

    def _api_post(
        self, handler: Callable[[Request, Principal, dict[str, Any]], Awaitable[Any]]
    ) -> Handler:
        async def run(request: Request) -> Response:
            principal = self._principal(request)
            if principal is None:
                return _unauthorized()
            if principal.via == "session" and not check_csrf(
                self._session(request), request.headers.get("x-csrf-token")
            ):
                return _json({"error": "missing or wrong X-CSRF-Token header"}, 403)
            try:
                body = await request.body()
                if len(body) > _MAX_FORM:
                    raise _HttpError(413, f"the body is larger than {_MAX_FORM} bytes")
                try:
                    data = load_json(body) if body.strip() else {}
                except ValueError as exc:
                    raise _HttpError(400, f"the body is not JSON: {exc}") from None
                if not isinstance(data, dict):
                    raise _HttpError(400, "the body must be a JSON object")
                return _json(await handler(request, principal, data), 200)
            except _HttpError as exc:
                return _json({"error": exc.message, "errors": exc.errors}, exc.status)

        return run

    async def _read_form(self, request: Request) -> dict[str, str]:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            raise _HttpError(415, "send the form as application/x-www-form-urlencoded")
        body = await request.body()
        if len(body) > _MAX_FORM:
            raise _HttpError(413, f"the form is larger than {_MAX_FORM} bytes")
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        fields = {k: v[-1] for k, v in parsed.items()}
        fields["__status"] = ",".join(parsed.get("status", []))
        return fields

    # -- rendering ----------------------------------------------------------------

    def _render(
        self,
        request: Request,
        template: str,
        principal: Principal | None,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        session = self._session(request)
        fresh = None
        if session is None:
            session = fresh = Session.new()
        html = self.templates.get_template(template).render(
            base=self.prefix,
            me=principal,
            csrf=session.csrf,
            can_replay=principal is not None and principal.can(Permission.REPLAY),
            can_discard=principal is not None and principal.can(Permission.DISCARD),
            can_reveal=principal is not None and principal.can(Permission.REVEAL),
            statuses=[s.value for s in FailureStatus],
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        if fresh is not None:
            self._set_cookie(response, fresh)
        return response

    def _set_cookie(self, response: Response, session: Session) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.auth.dump_session(session),
            max_age=self.auth.max_age,
            path=self.prefix or "/",
            httponly=True,
            samesite="lax",
            secure=self.secure,
        )

    def _error_page(self, request: Request, principal: Principal, exc: _HttpError) -> Response:
        return self._render(
            request,
            "error.html",
            principal,
            exc.status,
            title=_TITLES.get(exc.status, "Error"),
            message=exc.message,
            errors=exc.errors,
        )

    def _refuse(self, request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith(f"{self.prefix}/api/"):
            return _json({"error": message}, status)
        return HTMLResponse(f"<p>{_escape(message)}</p>", status_code=status)

    # -- login --------------------------------------------------------------------

    def _next(self, target: str | None) -> str:
        # Only paths of the dashboard itself: never another site.
        if (
            target
            and target.startswith(f"{self.prefix}/")
            and not target.startswith("//")
            and "\\" not in target
            and "://" not in target
        ):
            return target
        return f"{self.prefix}/"

    async def login_page(self, request: Request) -> Response:
        return self._render(
            request,
            "login.html",
            None,
            next=self._next(request.query_params.get("next")),
            error="",
            configured=bool(self.auth.settings.users),
        )

    async def login(self, request: Request) -> Response:
        try:
            fields = await self._read_form(request)
        except _HttpError as exc:
            return HTMLResponse(_escape(exc.message), status_code=exc.status)
        session = self._session(request)
        if not check_csrf(session, fields.get("csrf")):
            return self._render(
                request,
                "login.html",
                None,
                403,
                next=self._next(fields.get("next")),
                error="The form expired: please try again.",
                configured=True,
            )
        name, password = fields.get("username", ""), fields.get("password", "")
        address = request.client.host if request.client else ""
        wait = await asyncio.to_thread(self.auth.throttled, name, address)
        if wait is not None:
            minutes = max(1, round(wait / 60))
            _log.info("dashboard login throttled", address=address)
            response = self._render(
                request,
                "login.html",
                None,
                429,
                next=self._next(fields.get("next")),
                error=(
                    "Too many failed logins: try again in "
                    f"{minutes} minute{'s' if minutes != 1 else ''}."
                ),
                configured=True,
            )
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        principal = await asyncio.to_thread(self.auth.login, name, password)
        if principal is None:
            await asyncio.to_thread(self.auth.failed_login, name, address)
            return self._render(
                request,
                "login.html",
                None,
                401,
                next=self._next(fields.get("next")),
                error="Wrong user name or password.",
                configured=bool(self.auth.settings.users),
            )
        session = await asyncio.to_thread(self.auth.start_session, principal, address)
        redirect = RedirectResponse(self._next(fields.get("next")), 303)
        self._set_cookie(redirect, session)
        return redirect

    async def logout(self, request: Request, principal: Principal, _: dict[str, str]) -> Response:
        session = self._session(request)
        if session is not None:
            await asyncio.to_thread(self.auth.end_session, session)
        response = RedirectResponse(f"{self.prefix}/login", 303)
        self._set_cookie(response, Session.new())
        return response

    async def static(self, request: Request) -> Response:
        found = _STATIC.get(request.path_params["name"])
        if found is None:
            return Response("not found", 404)
        media, path = found
        return Response(path.read_bytes(), media_type=media)

    # -- pages --------------------------------------------------------------------

    async def overview_page(self, request: Request, principal: Principal) -> Response:
        range_name = request.query_params.get("range", "24h")
        data = await asyncio.to_thread(views.overview, self.store, range_name)
        return self._render(
            request,
            "overview.html",
            principal,
            ov=data,
            ranges=list(views.RANGES),
            chart_width=views.CHART_WIDTH,
            chart_height=views.CHART_HEIGHT,
        )

    def _listing(self, request: Request) -> tuple[FailureFilter, int, list[Any], int]:
        params = request.query_params
        where = views.filter_from(params, params.getlist("status"))
        page = _int(params.get("page"), 1, minimum=1)
        entries = self.store.search(where, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
        return where, page, entries, self.store.count(where)

    async def list_page(self, request: Request, principal: Principal) -> Response:
        where, page, entries, total = await asyncio.to_thread(self._listing, request)
        pages = max(1, -(-total // PAGE_SIZE))
        bulk = where if where.status else FailureFilter(**{**_fields(where), "status": ()})
        open_matching = total
        if not where.status:
            open_filter = FailureFilter(**{**_fields(where), "status": (FailureStatus.OPEN,)})
            open_matching = await asyncio.to_thread(self.store.count, open_filter)
        return self._render(
            request,
            "list.html",
            principal,
            where=where,
            params=request.query_params,
            selected=set(request.query_params.getlist("status")),
            entries=entries,
            total=total,
            page=page,
            pages=pages,
            query=lambda **extra: views.filter_query(where, **extra),
            bulk=bulk,
            bulk_count=open_matching,
            notice=_notice(request.query_params),
        )

    def _detail(
        self, request: Request, principal: Principal, *, reveal: bool, status: int = 200
    ) -> Response:
        failure_id = int(request.path_params["id"])
        try:
            shown = self.ops.show(failure_id, principal.actor, reveal=reveal)
        except NotFoundError as exc:
            raise _HttpError(404, str(exc)) from None
        except PermissionDeniedError as exc:
            raise _HttpError(403, str(exc)) from None
        entry = self.ops.get(failure_id)
        headers = dict(shown.get("headers") or {})
        trace = next((v for k, v in headers.items() if "stacktrace" in k or "traceback" in k), None)
        return self._render(
            request,
            "detail.html",
            principal,
            status,
            f=shown,
            entry=entry,
            timeline=views.timeline(self.store, entry),
            trace=trace,
            headers=headers,
            revealed=reveal,
            notice=_notice(request.query_params),
        )

    async def detail_page(self, request: Request, principal: Principal) -> Response:
        return self._detail(request, principal, reveal=False)

    async def reveal_page(
        self, request: Request, principal: Principal, _: dict[str, str]
    ) -> Response:
        _log.info("personal data revealed", user=principal.name, id=request.path_params["id"])
        return self._detail(request, principal, reveal=True)

    async def edit_page(self, request: Request, principal: Principal) -> Response:
        if not principal.can(Permission.REPLAY):
            raise _HttpError(403, f"{principal.name} may not replay failed events")
        failure_id = int(request.path_params["id"])
        try:
            shown = self.ops.show(failure_id, principal.actor)
        except NotFoundError as exc:
            raise _HttpError(404, str(exc)) from None
        return self._render(
            request,
            "edit.html",
            principal,
            f=shown,
            text=json.dumps(shown["event"], indent=2, ensure_ascii=False),
            errors=[],
            message="",
        )

    async def edit_replay(
        self, request: Request, principal: Principal, fields: dict[str, str]
    ) -> Response:
        failure_id = int(request.path_params["id"])
        text = fields.get("event", "")
        try:
            payload = self._unmasked(failure_id, text)
            await self.ops.replay([failure_id], principal.actor, payload=payload)
        except InvalidReplayError as exc:
            shown = self.ops.show(failure_id, principal.actor)
            message, errors = self._scrubbed(failure_id, str(exc), exc.errors, principal)
            return self._render(
                request,
                "edit.html",
                principal,
                422,
                f=shown,
                text=text,
                errors=errors,
                message=message,
            )
        except OperationError as exc:
            raise _as_http(exc) from None
        return RedirectResponse(f"{self.prefix}/failures/{failure_id}?notice=replayed", 303)

    def _unmasked(self, failure_id: int, text: str) -> bytes:
        entry = self.ops.get(failure_id)
        try:
            edited = load_json(text)
        except ValueError as exc:
            raise InvalidReplayError(f"the edited event is not JSON: {exc}") from None
        try:
            original = json.loads(entry.payload)
        except ValueError:
            original = None
        return json.dumps(views.unmask(edited, original), ensure_ascii=False).encode()

    def _scrubbed(
        self, failure_id: int, message: str, errors: Sequence[Any], principal: Principal
    ) -> tuple[str, list[Any]]:
        """Validation errors of an edit, with the event's personal values masked."""
        if principal.can(Permission.REVEAL):
            return message, list(errors)
        entry = self.ops.get(failure_id)
        try:
            data = json.loads(entry.payload).get("data")
        except (ValueError, AttributeError):
            data = None
        values = scrubber(personal_values(data, self.ops.schemas.personal_paths(entry.event_type)))
        return values.text(message), values.data(list(errors))

    async def replay_one(
        self, request: Request, principal: Principal, _: dict[str, str]
    ) -> Response:
        failure_id = int(request.path_params["id"])
        try:
            await self.ops.replay([failure_id], principal.actor)
        except OperationError as exc:
            raise _as_http(exc) from None
        return RedirectResponse(f"{self.prefix}/failures/{failure_id}?notice=replayed", 303)

    async def discard_one(
        self, request: Request, principal: Principal, fields: dict[str, str]
    ) -> Response:
        failure_id = int(request.path_params["id"])
        try:
            self.ops.discard([failure_id], principal.actor, reason=fields.get("reason", ""))
        except OperationError as exc:
            raise _as_http(exc) from None
        return RedirectResponse(f"{self.prefix}/failures/{failure_id}?notice=discarded", 303)

    async def replay_bulk(
        self, request: Request, principal: Principal, fields: dict[str, str]
    ) -> Response:
        where = views.filter_from(fields, [s for s in fields["__status"].split(",") if s])
        job = await self._start_replay(where, principal)
        return RedirectResponse(f"{self.prefix}/jobs/{quote(job, safe='')}", 303)

    async def discard_bulk(
        self, request: Request, principal: Principal, fields: dict[str, str]
    ) -> Response:
        where = views.filter_from(fields, [s for s in fields["__status"].split(",") if s])
        try:
            ids = self.ops.discard(where, principal.actor, reason=fields.get("reason", ""))
        except OperationError as exc:
            raise _as_http(exc) from None
        query = views.filter_query(where, notice="discarded", n=len(ids))
        return RedirectResponse(f"{self.prefix}/failures?{query}", 303)

    async def _start_replay(self, where: FailureFilter, principal: Principal) -> str:
        # The operations check the permission (and audit a refusal) before anything else.
        try:
            report = await self.ops.replay(where, principal.actor)
        except OperationError as exc:
            raise _as_http(exc) from None
        return report.job

    def _progress(self, job_id: str) -> dict[str, Any]:
        # Jobs are kept in the store: their pages outlive a restart of the app.
        job = self.store.replay_job(job_id)
        if job is None:
            raise _HttpError(404, f"no replay job {job_id!r}")
        return job.to_dict()

    async def job_page(self, request: Request, principal: Principal) -> Response:
        progress = await asyncio.to_thread(self._progress, request.path_params["job"])
        return self._render(request, "job.html", principal, job=progress)

    async def audit_page(self, request: Request, principal: Principal) -> Response:
        page = _int(request.query_params.get("page"), 1, minimum=1)
        rows = await asyncio.to_thread(
            self.store.audit_log, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
        )
        return self._render(
            request,
            "audit.html",
            principal,
            rows=rows[:PAGE_SIZE],
            page=page,
            more=len(rows) > PAGE_SIZE,
        )

    def _history(self, request: Request) -> tuple[str | None, str | None, list[Any]]:
        event_id = request.query_params.get("id") or None
        key = request.query_params.get("key") or None
        if event_id is None and key is None:
            return None, None, []
        found = self.store.outcome_history(event_id=event_id, business_key=key)
        return event_id, key, found

    async def events_page(self, request: Request, principal: Principal) -> Response:
        event_id, key, found = await asyncio.to_thread(self._history, request)
        failures: list[Any] = []
        if event_id is not None:
            failures = await asyncio.to_thread(self.store.failures_of_event, event_id)
        return self._render(
            request,
            "events.html",
            principal,
            event_id=event_id,
            key=key,
            asked=event_id is not None or key is not None,
            outcomes=found,
            failures=failures,
        )

    # -- JSON API -----------------------------------------------------------------

    async def api_events(self, request: Request, principal: Principal) -> Any:
        del principal
        event_id, key, found = await asyncio.to_thread(self._history, request)
        if event_id is None and key is None:
            raise _HttpError(400, "give ?id=EVENT_ID or ?key=KEY")
        # The vendor's words (detail) stay out of the page and the API: the CLI has them.
        return {"outcomes": [{**o.to_dict(), "detail": None} for o in found]}

    async def api_me(self, request: Request, principal: Principal) -> Any:
        return {
            "name": principal.name,
            "role": principal.role.value,
            "permissions": sorted(p.value for p in principal.permissions),
            "via": principal.via,
        }

    async def api_overview(self, request: Request, principal: Principal) -> Any:
        range_name = request.query_params.get("range", "24h")
        data = await asyncio.to_thread(views.overview, self.store, range_name)
        return data.to_dict()

    async def api_list(self, request: Request, principal: Principal) -> Any:
        _, page, entries, total = await asyncio.to_thread(self._listing, request)
        return {
            "total": total,
            "page": page,
            "page_size": PAGE_SIZE,
            "failures": [e.summary() for e in entries],
        }

    def _show(self, failure_id: int, principal: Principal, *, reveal: bool) -> dict[str, Any]:
        try:
            return self.ops.show(failure_id, principal.actor, reveal=reveal)
        except OperationError as exc:
            raise _as_http(exc) from None

    async def api_show(self, request: Request, principal: Principal) -> Any:
        return self._show(int(request.path_params["id"]), principal, reveal=False)

    async def api_reveal(self, request: Request, principal: Principal, _: dict[str, Any]) -> Any:
        return self._show(int(request.path_params["id"]), principal, reveal=True)

    async def api_replay(self, request: Request, principal: Principal, data: dict[str, Any]) -> Any:
        failure_id = int(request.path_params["id"])
        payload = None
        if data.get("event") is not None:
            entry = self._entry(failure_id)
            try:
                original = json.loads(entry.payload)
            except ValueError:
                original = None
            payload = json.dumps(views.unmask(data["event"], original)).encode()
        try:
            report = await self.ops.replay([failure_id], principal.actor, payload=payload)
        except InvalidReplayError as exc:
            message, errors = self._scrubbed(failure_id, str(exc), exc.errors, principal)
            raise _HttpError(422, message, errors) from None
        except OperationError as exc:
            raise _as_http(exc) from None
        return {"ids": report.ids, "queued": report.queued, "skipped": report.skipped}

    def _entry(self, failure_id: int) -> Any:
        try:
            return self.ops.get(failure_id)
        except NotFoundError as exc:
            raise _HttpError(404, str(exc)) from None

    async def api_discard(
        self, request: Request, principal: Principal, data: dict[str, Any]
    ) -> Any:
        failure_id = int(request.path_params["id"])
        try:
            reason = str(data.get("reason", ""))
            ids = self.ops.discard([failure_id], principal.actor, reason=reason)
        except OperationError as exc:
            raise _as_http(exc) from None
        return {"ids": ids}

    def _api_filter(self, data: Mapping[str, Any]) -> FailureFilter:
        known = (*views.FILTER_FIELDS, "since", "until")
        fields = {k: str(v) for k, v in data.items() if k in known}
        status = data.get("status") or []
        if isinstance(status, str):
            status = [status]
        where = views.filter_from(fields, [str(s) for s in status])
        ids = data.get("ids")
        if ids is not None:
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise _HttpError(400, "ids must be a list of entry ids")
            where = FailureFilter(**{**_fields(where), "ids": ids})
        criteria = where.describe().keys() - {"status"}
        if not criteria and not data.get("all"):
            raise _HttpError(400, "give a filter or ids (or all: true for every entry)")
        return where

    async def api_replay_bulk(
        self, request: Request, principal: Principal, data: dict[str, Any]
    ) -> Any:
        job = await self._start_replay(self._api_filter(data), principal)
        return await asyncio.to_thread(self._progress, job)

    async def api_discard_bulk(
        self, request: Request, principal: Principal, data: dict[str, Any]
    ) -> Any:
        where = self._api_filter(data)
        try:
            ids = self.ops.discard(where, principal.actor, reason=str(data.get("reason", "")))
        except OperationError as exc:
            raise _as_http(exc) from None
        return {"ids": ids}

    async def api_job(self, request: Request, principal: Principal) -> Any:
        return await asyncio.to_thread(self._progress, request.path_params["job"])

    async def api_audit(self, request: Request, principal: Principal) -> Any:
        page = _int(request.query_params.get("page"), 1, minimum=1)
        rows = await asyncio.to_thread(
            self.store.audit_log, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        return {"page": page, "audit": [row.to_dict() for row in rows]}


_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Cannot do that now",
    413: "Too large",
    415: "Wrong content type",
    422: "Refused",
}

_NOTICES = {
    "replayed": "Replay requested: the event is appended to the log within a second.",
    "discarded": "Discarded.",
}


def _notice(params: Mapping[str, str]) -> str:
    text = _NOTICES.get(params.get("notice", ""), "")
    count = params.get("n")
    if text and count and count.isdigit():
        text = f"{text} ({count} entries)"
    return text


def _as_http(exc: OperationError) -> _HttpError:
    if isinstance(exc, NotFoundError):
        return _HttpError(404, str(exc))
    if isinstance(exc, PermissionDeniedError):
        return _HttpError(403, str(exc))
    if isinstance(exc, InvalidReplayError):
        return _HttpError(409 if not exc.errors else 422, str(exc), exc.errors)
    return _HttpError(409 if "only" in str(exc) else 400, str(exc))


def _fields(where: FailureFilter) -> dict[str, Any]:
    return {name: getattr(where, name) for name in where.__dataclass_fields__}


def _int(text: str | None, default: int, *, minimum: int) -> int:
    try:
        return max(minimum, int(text)) if text else default
    except ValueError:
        return default


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "authentication required: a session or Authorization: Bearer <token>"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="platypus"'},
    )


def _escape(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def create_dashboard(
    operations: Operations,
    auth: Authenticator,
    *,
    prefix: str = "/ops",
    secure_cookies: bool = False,
) -> ASGIApp:
    """The dashboard app, to mount at ``prefix`` (``Mount(prefix, app)``)."""
    return Dashboard(operations, auth, prefix=prefix, secure_cookies=secure_cookies).app()
