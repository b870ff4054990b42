"""A stand-in for Meta's Graph API on loopback, serving the documented response shapes.

- ``GET /vX/act_<id>/insights`` (``level=ad, time_increment=1, time_range``): rows of the account within the range,
  ``page_size`` per page, ``paging.cursors.after`` and ``paging.next`` while more remain;
- ``POST /vX/act_<id>/insights``: an async report job (``{"report_run_id"}``) whose ``async_status`` goes
  "Job Started" -> "Job Running" -> "Job Completed" one poll at a time (or ends ``job_outcome``, e.g. "Job Failed"
  with Meta's ``error_*`` fields); ``GET /vX/<run_id>/insights`` pages its rows;
- ``GET /vX/<ad_id>``, ``POST /vX/<ad_id>`` (``status``), ``GET``/``POST /vX/<adset_id>`` (``daily_budget``),
  ``GET /vX/act_<id>`` (``currency``); every POST is recorded, and ``hold_posts`` makes a POST wait (after it
  was applied) until ``release()`` — a worker can be killed in the middle of the call;
- faults: ``fail_next`` answers the next matching requests with an error body (code 17, 190, 2, 100 …) and the
  usage headers; ``usage_pct`` adds ``X-Business-Use-Case-Usage``/``X-Ad-Account-Usage`` to every answer;
  ``expired_tokens`` answers code 190 to any request carrying one of them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path contains ``path`` (and method) with Meta error ``code``."""

    path: str
    code: int
    times: int = 1
    method: str | None = None
    http_status: int = 400
    subcode: int | None = None
    message: str = "fault"
    regain_minutes: int = 0


@dataclass
class GraphState:
    token: str = "test-token"
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # account -> insight rows
    page_size: int = 50
    ads: dict[str, dict[str, Any]] = field(default_factory=dict)
    adsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    currencies: dict[str, str] = field(default_factory=dict)
    usage_pct: float = 0.0
    expired_tokens: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    job_outcome: str = "Job Completed"
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    posts: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    hold_posts: bool = False
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(900_001))

    def release(self) -> None:
        self.released.set()

    def posts_to(self, object_id: str) -> list[dict[str, str]]:
        return [params for path, params in self.posts if path == object_id]


def usage_headers(pct: float, regain_minutes: int = 0) -> dict[str, str]:
    business = {"1234567": [{"type": "ads_management", "call_count": pct, "total_cputime": pct / 2,
                             "total_time": pct / 2, "estimated_time_to_regain_access": regain_minutes}]}
    return {"X-Business-Use-Case-Usage": json.dumps(business),
            "X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": pct, "reset_time_duration": 0,
                                              "ads_api_access_tier": "standard_access"})}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: pytest shows failures, not every request

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            params.update({k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()})
        parts = [p for p in url.path.split("/") if p][1:]  # drop the version
        state = self.server.state
        with state.lock:
            state.requests.append((method, "/".join(parts), params))
        status, body, headers = self._answer(method, parts, params)
        if method == "POST" and state.hold_posts and status == 200 and parts and parts[-1] != "insights":
            state.held.set()
            state.released.wait(60)
        self._send(status, body, headers)

    def _answer(self, method: str, parts: list[str], params: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        state = self.server.state
        token = params.get("access_token", "")
        if token in state.expired_tokens:
            return self._error(190, "Error validating access token: Session has expired on Sunday, 06-Dec-26.",
                               subcode=463, http_status=400)
        if token != state.token:
            return self._error(190, "Invalid OAuth access token - Cannot parse access token", http_status=400)
        fault = self._fault(method, "/".join(parts))
        if fault is not None:
            return self._error(fault.code, fault.message, subcode=fault.subcode, http_status=fault.http_status,
                               regain=fault.regain_minutes)
        headers = usage_headers(state.usage_pct) if state.usage_pct else {}
        status, body = self._route(method, parts, params)
        return status, body, headers

    def _fault(self, method: str, path: str) -> Fault | None:
        with self.server.state.lock:
            for fault in self.server.state.faults:
                if fault.times > 0 and fault.path in path and fault.method in (None, method):
                    fault.times -= 1
                    return fault
        return None

    def _route(self, method: str, parts: list[str], params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.state
        if len(parts) == 2 and parts[1] == "insights" and parts[0].startswith("act_"):
            rows = self._in_range(state.rows.get(parts[0], []), params)
            if method == "POST":
                run_id = str(next(state.ids))
                state.reports[run_id] = {"rows": rows, "polls": 0}
                return 200, {"report_run_id": run_id}
            return 200, self._page(rows, params, f"{parts[0]}/insights")
        if len(parts) == 2 and parts[1] == "insights" and parts[0] in state.reports:
            return 200, self._page(state.reports[parts[0]]["rows"], params, f"{parts[0]}/insights")
        if len(parts) == 1 and parts[0] in state.reports:
            return 200, self._report(parts[0])
        if len(parts) == 1 and parts[0].startswith("act_"):
            return 200, {"id": parts[0], "currency": state.currencies.get(parts[0], "USD")}
        if len(parts) == 1 and parts[0] in state.ads:
            return self._object(method, state.ads[parts[0]], parts[0], params, "status")
        if len(parts) == 1 and parts[0] in state.adsets:
            return self._object(method, state.adsets[parts[0]], parts[0], params, "daily_budget")
        return 400, {"error": {"message": f"Unsupported request - object {'/'.join(parts)} does not exist",
                               "type": "GraphMethodException", "code": 100, "error_subcode": 33,
                               "fbtrace_id": "Standin"}}

    def _object(self, method: str, obj: dict[str, Any], object_id: str, params: dict[str, str],
                writable: str) -> tuple[int, Any]:
        if method == "GET":
            return 200, {"id": object_id, **obj}
        state = self.server.state
        with state.lock:
            state.posts.append((object_id, {k: v for k, v in params.items() if k != "access_token"}))
            if writable in params:
                obj[writable] = params[writable]
        return 200, {"success": True}

    def _report(self, run_id: str) -> dict[str, Any]:
        report = self.server.state.reports[run_id]
        report["polls"] += 1
        steps = ["Job Not Started", "Job Started", "Job Running", self.server.state.job_outcome]
        status = steps[min(report["polls"], len(steps) - 1)]
        body: dict[str, Any] = {"id": run_id, "async_status": status,
                                "async_percent_completion": 100 if status.endswith(("Completed", "Failed")) else 40}
        if status in ("Job Failed", "Job Skipped"):
            body.update(error_code=2601, error_subcode=1815107, error_message="Too much data was requested",
                        error_user_title="Report too large", error_user_msg="Reduce the date range")
        return body

    @staticmethod
    def _in_range(rows: list[dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
        window = json.loads(params.get("time_range") or "{}")
        since, until = window.get("since", "0000"), window.get("until", "9999")
        return [r for r in rows if since <= r["date_start"] <= until]

    def _page(self, rows: list[dict[str, Any]], params: dict[str, str], path: str) -> dict[str, Any]:
        start = int(params.get("after", "cursor-0").removeprefix("cursor-"))
        stop = start + self.server.state.page_size
        body: dict[str, Any] = {"data": rows[start:stop]}
        if stop < len(rows):
            after = f"cursor-{stop}"
            query = urlencode({**params, "after": after})
            body["paging"] = {"cursors": {"before": f"cursor-{start}", "after": after},
                              "next": f"http://{self.headers['Host']}/v26.0/{path}?{query}"}
        else:
            body["paging"] = {"cursors": {"before": f"cursor-{start}", "after": f"cursor-{stop}"}}
        return body

    @staticmethod
    def _error(code: int, message: str, *, subcode: int | None = None, http_status: int = 400,
               regain: int = 0) -> tuple[int, Any, dict[str, str]]:
        error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code,
                                 "fbtrace_id": "AStandInTrace"}
        if subcode is not None:
            error["error_subcode"] = subcode
        if code in (2, 17, 613) or 80000 <= code < 80100:
            error["is_transient"] = True
        headers = usage_headers(100, regain) if code in (4, 17, 613) or 80000 <= code < 80100 else {}
        return http_status, {"error": error}, headers

    def _send(self, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client was killed mid-call
            self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: GraphState


@contextmanager
def graph_standin(state: GraphState | None = None) -> Iterator[tuple[str, GraphState]]:
    """Serve the stand-in on a free loopback port; yields its base URL and state."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = state or GraphState()
    thread = threading.Thread(target=server.serve_forever, name="graph-standin", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.state.release()
        server.shutdown()
        server.server_close()
        thread.join(10)


def insight_rows(account: str, ads: int, days: list[str], *, campaign: str = "cmp-1") -> list[dict[str, Any]]:
    """Rows as Meta sends them: numbers as strings, zero link clicks omitted, conversions in ``actions``."""
    rows = []
    for a in range(ads):
        for d, day in enumerate(days):
            impressions = 2000 + a * 10 + d
            clicks = (a + d) % 7 * 5
            row: dict[str, Any] = {
                "ad_id": f"{account.removeprefix('act_')}{a:04d}", "ad_name": f"Ad {a}", "adset_id": f"as{a}",
                "campaign_id": campaign, "date_start": day, "date_stop": day, "impressions": str(impressions),
                "reach": str(impressions - 150), "frequency": "1.08", "spend": f"{impressions * 0.011:.2f}",
                "actions": [{"action_type": "purchase", "value": str(d % 3)},
                            {"action_type": "link_click", "value": str(clicks)}],
            }
            if clicks:
                row["inline_link_clicks"] = str(clicks)
            rows.append(row)
    return rows
