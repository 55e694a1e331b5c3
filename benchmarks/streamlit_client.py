"""A Streamlit client without a browser: one websocket session on a running `streamlit run` server, speaking the
protocol the web frontend speaks, so that a load benchmark can drive dozens of users from one process.

What the frontend does, and this client copies (streamlit 1.67, `streamlit/web/server/starlette`):
- it opens `ws://host:port/_stcore/stream` with the subprotocol "streamlit" (the header's later entries carry an
  XSRF token and a session id to resume, neither needed by a client that sends no Origin header);
- it asks for a run with a `BackMsg.rerun_script` (a `ClientState`: the page's query string, and the value of
  every widget on the page in `WidgetStates`, each under its widget id in the field its type uses);
- the server answers with `ForwardMsg`s, one per frame: `new_session` when a full run starts, `delta`s that put
  elements and blocks at a `metadata.delta_path` ([0] main area, [1] sidebar, then positions), `page_info_changed`
  with the address the script wrote, and `script_finished` (`FINISHED_EARLY_FOR_RERUN` when a newer run replaced
  it). At the end of a full run the page holds exactly the elements that run sent;
- when the script sets a widget's value (session state, a callback), the element arrives with `set_value` and
  the new value, which the frontend then sends back on every later rerun;
- a fragment with `run_every` sends `auto_rerun` (its id and interval): the frontend then asks for that fragment's
  run on a timer, with every widget value, until a full run starts or `stop_auto_rerun` names it; a fragment run
  starts with a `new_session` whose metadata names the fragment, and redraws only that fragment's elements;
- with browser.gatherUsageStats on, each run ends with a `page_profile` that holds the run's execution time as
  the server measured it.

Widgets are found by their label and element type, never by their position, so a page that is rearranged keeps
working. Values are the formatted option texts the page shows (segmented controls, pills, select boxes), numbers
(sliders) or booleans (checkboxes, toggles). Other widget types keep the value the server holds for them.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import websockets
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Element_pb2 import Element
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Markdown_pb2 import Markdown
from streamlit.proto.WidgetStates_pb2 import WidgetState

STREAM_PATH = "/_stcore/stream"
SUBPROTOCOL = "streamlit"
WIDGETS = ("slider", "button_group", "selectbox", "checkbox")  # the widget types whose values this client sends
Path = tuple[int, ...]  # a delta path: container (0 main, 1 sidebar), then the position in each block
SIDEBAR = 1


class ProtocolError(RuntimeError):
    """The server closed the session, or a run did not finish in time."""


@dataclass(frozen=True)
class Run:
    """One script run as the client saw it, with perf_counter() times in seconds."""

    sent: float | None  # when the request that caused it left the client (None: a run this client did not ask
    # for by a widget change, e.g. a fragment's timer or the script's own st.rerun)
    started: float  # when its new_session arrived
    finished: float  # when its script_finished arrived
    status: str  # ForwardMsg.ScriptFinishedStatus name
    fragment: bool  # a fragment run (it redrew part of the page)
    exec_s: float | None  # the script's execution time measured by the server (its page profile, sent only when
    # the server runs with browser.gatherUsageStats on); None without it
    frames: int = 0  # ForwardMsgs from the request to script_finished (requested runs only)
    nbytes: int = 0  # their serialized size

    @property
    def latency_s(self) -> float | None:
        """Request to script_finished: what a user waits for this run, less the browser's drawing."""
        return None if self.sent is None else self.finished - self.sent

    @property
    def server_s(self) -> float:
        """The run's time on the server: its page profile's when sent, else new_session to script_finished as
        this client received them (a busy client reads both late, so this can be too short or too long)."""
        return self.finished - self.started if self.exec_s is None else self.exec_s


class Page:
    """The elements a session shows after a run, by delta path.

    Args:
        elements: {delta path: Element proto}.
    """

    def __init__(self, elements: dict[Path, Element]):
        self.elements = elements

    def _of(self, kind: str | None) -> list[tuple[str, object]]:
        out = []
        for path in sorted(self.elements):
            element = self.elements[path]
            k = element.WhichOneof("type")
            if kind is None or k == kind:
                out.append((k, getattr(element, k)))
        return out

    def _path_of(self, proto: Any) -> Path:
        wanted = proto.id
        return next(
            p for p, el in self.elements.items() if getattr(getattr(el, el.WhichOneof("type")), "id", None) == wanted
        )

    def widgets(self, kind: str | None = None) -> list[tuple[str, object]]:
        """The widgets on the page in page order, as (element type, proto), optionally of one type."""
        return [(k, e) for k, e in self._of(kind) if getattr(e, "id", "") and hasattr(e, "label")]

    def widget(self, label: str, kind: str | None = None) -> tuple[str, object]:
        """The one widget with this label (and element type, if given). A label both in the sidebar and on the
        page names the sidebar's: this client is a desktop browser, where a page's copy of a sidebar control
        (the phone layout's sparsity slider) is hidden by CSS.

        Args:
            label: the widget's label as the page shows it.
            kind: the Element type ("slider", "button_group", "selectbox", …); None matches any.

        Returns:
            (element type, proto).

        Raises:
            LookupError: no widget, or more than one, has that label; the message lists the labels on the page.
        """
        found = [(k, e) for k, e in self.widgets(kind) if e.label == label]
        if len(found) > 1:
            found = [(k, e) for k, e in found if self._path_of(e)[0] == SIDEBAR]
        if len(found) != 1:
            shown = ", ".join(f"{k} {e.label!r}" for k, e in self.widgets())
            raise LookupError(
                f"{len(found)} widgets labelled {label!r}{f' of type {kind}' if kind else ''}; the page has: {shown}"
            )
        return found[0]

    def metrics(self) -> dict[str, str]:
        """{label: value text} of every st.metric."""
        return {m.label: m.body for _, m in self._of("metric")}

    def captions(self) -> list[str]:
        """The texts of every st.caption, in page order."""
        return [m.body for _, m in self._of("markdown") if m.element_type == Markdown.Type.CAPTION]

    def errors(self) -> list[str]:
        """What the page shows as failed: exception boxes ("Type: message") and st.error alerts."""
        out = [f"{e.type}: {e.message}" for _, e in self._of("exception") if not e.is_warning]
        return out + [f"st.error: {a.body}" for _, a in self._of("alert") if a.format == Alert.Format.ERROR]


def shown_value(kind: str, proto) -> object:
    """The value a widget element shows when it arrives: the script's (set_value), else its default.

    Args:
        kind: the element type, one of WIDGETS.
        proto: the widget's proto.

    Returns:
        str for button groups (None when nothing is selected) and select boxes, float or [low, high] for
        sliders, bool for checkboxes.

    Raises:
        ValueError: `kind` is not one of WIDGETS.
    """
    if kind == "slider":
        v = list(proto.value if proto.set_value else proto.default)
        return v[0] if len(v) == 1 else v
    if kind == "button_group":
        chosen = list(proto.raw_values) if proto.set_value else [proto.options[i].content for i in proto.default]
        return chosen[0] if chosen else None
    if kind == "selectbox":
        if proto.set_value:
            return proto.raw_value
        return proto.options[proto.default] if proto.options else None
    if kind == "checkbox":
        return proto.value if proto.set_value else proto.default
    raise ValueError(f"widget type {kind!r} is not one this client sets; it sets {', '.join(WIDGETS)}")


def _state(widget_id: str, kind: str, value: object) -> WidgetState:
    """The WidgetState the frontend sends for a widget of this type holding `value`."""
    s = WidgetState(id=widget_id)
    if kind == "slider":
        s.double_array_value.data[:] = [float(v) for v in (value if isinstance(value, list) else [value])]
    elif kind == "button_group":
        s.string_array_value.data[:] = [] if value is None else [str(value)]
    elif kind == "selectbox":
        s.string_value = str(value)
    else:  # checkbox (toggles are checkboxes too)
        s.bool_value = bool(value)
    return s


def _option(kind: str, proto, value: object) -> object:
    """`value` as the widget's own option text: exact, or the one option that starts with `value` and a space
    (a select box whose format_func adds a description: "obs" picks "obs — …").

    Raises:
        ValueError: no option, or several, match.
    """
    if kind == "button_group":
        options = [o.content for o in proto.options]
    elif kind == "selectbox":
        options = list(proto.options)
    else:
        return value
    if value is None and kind == "button_group":
        return None
    text = str(value)
    found = [o for o in options if o == text] or [o for o in options if o.startswith(text + " ")]
    if len(found) != 1:
        raise ValueError(f"{proto.label!r} has no single option {text!r}; its options are {options}")
    return found[0]


@dataclass
class _Pending:
    """A full run this client asked for and waits on."""

    sent: float
    future: asyncio.Future
    started: float | None = None
    frames: int = 0
    nbytes: int = 0
    events: list[str] = field(default_factory=list)  # the runs' starts and ends since the request, for errors


@dataclass
class Session:
    """One user's session: a websocket, the page as of the last finished run, and the widget values the client
    holds. Like the frontend, it reruns a fragment every `run_every` seconds while the server asks it to
    (`auto_rerun`), which is how a page polls for background results.

    Use `session, run = await Session.open(url, query)`, then `await session.set(label, value)` per move,
    `await session.until(check)` to wait for what a move leads to, and `await session.close()`.

    Args:
        url: the server's address, e.g. "http://127.0.0.1:8501".
        query: the query string the page opens with, e.g. "mode=unit&sparsity=90".
        timeout_s: how long a run may take before `set` raises ProtocolError.
        compression: "deflate" (what browsers negotiate) or None.
    """

    url: str
    query: str = ""
    timeout_s: float = 120.0
    compression: str | None = "deflate"
    page: Page = field(default_factory=lambda: Page({}))
    page_time: float = 0.0  # perf_counter() when the page's last run finished
    address: str = ""  # the query string the script last wrote (page_info_changed)
    runs: list[Run] = field(default_factory=list)  # every run finished since the session opened, asked for or not
    _values: dict[str, tuple[str, object]] = field(default_factory=dict)  # widget id -> (type, value)
    _building: dict[Path, tuple[Element, str]] = field(default_factory=dict)  # this run's elements, fragment ids
    _fragments: dict[Path, str] = field(default_factory=dict)  # the fragment that drew each element of the page
    _run: tuple[float, tuple[str, ...]] | None = None  # the run in progress: when it started, its fragments
    _exec_s: float | None = None  # the run in progress's page profile
    _pending: _Pending | None = None
    _timers: dict[str, tuple[float, asyncio.Task]] = field(default_factory=dict)  # fragment id -> (interval, task)
    _waiters: list[asyncio.Future] = field(default_factory=list)
    _ws: object = None
    _reader: asyncio.Task | None = None
    _closed_because: str | None = None
    _last_frame: float | None = None  # perf_counter() when the last frame arrived

    @classmethod
    async def open(
        cls, url: str, query: str = "", timeout_s: float = 120.0, compression: str | None = "deflate"
    ) -> tuple[Session, Run]:
        """Connect and run the page once, as a browser opening `url?query` does.

        Args:
            url: the server's address.
            query: the query string the page opens with.
            timeout_s: how long a run may take.
            compression: "deflate" or None.

        Returns:
            (the session, its first run).

        Raises:
            ProtocolError: the first run did not finish within `timeout_s`.
            OSError: the server cannot be reached.
        """
        s = cls(url, query, timeout_s, compression)
        parts = urlsplit(url)
        ws_url = f"{'wss' if parts.scheme == 'https' else 'ws'}://{parts.netloc}{parts.path.rstrip('/')}{STREAM_PATH}"
        # max_size=None: a page's plotly figures can exceed websockets' 1 MiB default per frame
        s._ws = await websockets.connect(
            ws_url, subprotocols=[SUBPROTOCOL], max_size=None, compression=compression, open_timeout=timeout_s
        )
        s._reader = asyncio.create_task(s._read())
        return s, await s._request()

    def value(self, label: str, kind: str | None = None) -> object:
        """The value the client holds for the widget with this label (what a browser would show).

        Args:
            label: the widget's label.
            kind: its element type, when the label alone is ambiguous.

        Returns:
            the value, as `shown_value` describes it.

        Raises:
            LookupError: no single widget has that label.
        """
        _, proto = self.page.widget(label, kind)
        return self._values[proto.id][1]

    async def set(self, label: str, value: object, kind: str | None = None) -> Run:
        """Give the widget labelled `label` a new value, as a user's input does, and wait for the full run it
        causes (later runs, e.g. a poll that finds a background result, are `until`'s business).

        Args:
            label: the widget's label.
            value: the new value: an option's text (or its first word), a number, a bool; None deselects pills.
            kind: the element type, when the label alone is ambiguous.

        Returns:
            the finished run.

        Raises:
            LookupError: no single widget has that label.
            ValueError: the widget's type is not one this client sets, or `value` is not one of its options.
            ProtocolError: the run did not finish within `timeout_s`, or the server closed the session.
        """
        k, proto = self.page.widget(label, kind)
        if k not in WIDGETS:
            raise ValueError(f"{label!r} is a {k}; this client sets {', '.join(WIDGETS)}")
        self._values[proto.id] = (k, _option(k, proto, value))
        return await self._request()

    async def rerun(self, holding: bool = True) -> Run:
        """Ask for a full run that changes no widget, and wait for it.

        Args:
            holding: False sends no widget values at all, as chromium on a loaded machine was seen to do (a click
                during the page's first run); the widgets then show what the run's elements carry.

        Returns:
            the finished run.

        Raises:
            ProtocolError: the run did not finish within `timeout_s`, or the server closed the session.
        """
        if not holding:
            self._values.clear()
        return await self._request()

    @property
    def polling(self) -> bool:
        """Whether a fragment of the page reruns on a timer (e.g. while it waits for a background result)."""
        return bool(self._timers)

    async def until(self, check: Callable[[Page], bool], timeout_s: float | None = None) -> float:
        """Wait until the page, at the end of some run, passes `check` (it may already).

        Args:
            check: a test of the page.
            timeout_s: how long to wait; None: the session's `timeout_s`.

        Returns:
            perf_counter() when the run that drew the passing page finished.

        Raises:
            ProtocolError: the page did not pass in time, or the server closed the session.
        """
        deadline = time.perf_counter() + (self.timeout_s if timeout_s is None else timeout_s)
        while not check(self.page):
            if self._closed_because:
                raise ProtocolError(self._closed_because)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, max(deadline - time.perf_counter(), 0))
            except TimeoutError:
                raise ProtocolError(f"the page did not get there within {timeout_s} s") from None
        return self.page_time

    async def close(self) -> None:
        """Stop the fragment timers and close the websocket; the server then drops the session."""
        self._stop_timers(list(self._timers))
        if self._reader:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()

    def _rerun_msg(self, fragment_id: str = "") -> bytes:
        msg = BackMsg()
        msg.rerun_script.query_string = self.address or self.query
        msg.rerun_script.widget_states.widgets.extend(_state(i, k, v) for i, (k, v) in self._values.items())
        if fragment_id:
            msg.rerun_script.fragment_id, msg.rerun_script.is_auto_rerun = fragment_id, True
        return msg.SerializeToString()

    async def _request(self) -> Run:
        if self._closed_because:
            raise ProtocolError(self._closed_because)
        self._pending = _Pending(time.perf_counter(), asyncio.get_running_loop().create_future())
        await self._ws.send(self._rerun_msg())
        try:
            return await asyncio.wait_for(self._pending.future, self.timeout_s)
        except TimeoutError:
            p = self._pending
            last = "none yet" if self._last_frame is None else f"{time.perf_counter() - self._last_frame:.0f} s ago"
            raise ProtocolError(
                f"no finished run within {self.timeout_s:.0f} s of the request ({p.frames} frames "
                f"since, {'a run started' if p.started else 'no run started'}; runs: "
                f"{', '.join(p.events[-12:]) or 'none'}; last frame {last}, "
                f"{len(self._timers)} timers, {self._link()})"
            ) from None
        finally:
            self._pending = None

    def _link(self) -> str:
        """The websocket's state as this client sees it, for an error that says why no frame came: the reader
        task, the connection, and websockets' flow control (frames buffered, reading paused)."""
        ws, reader = self._ws, self._reader
        frames = getattr(ws, "recv_messages", None)
        transport = getattr(ws, "transport", None)
        return (
            f"reader {'done' if reader is None or reader.done() else 'waiting'}, websocket {ws.state.name}, "
            f"{len(getattr(frames, 'frames', ()))} frames buffered, reading "
            f"{'paused' if transport is not None and not transport.is_reading() else 'on'}, "
            f"{'no transport' if transport is None else transport.get_write_buffer_size()} bytes to send"
        )

    async def _auto_rerun(self, fragment_id: str, interval: float) -> None:
        while True:  # a timer, as the frontend's setInterval: it does not wait for the run it asked for
            await asyncio.sleep(interval)
            if self._closed_because:
                return
            await self._ws.send(self._rerun_msg(fragment_id))

    def _stop_timers(self, fragment_ids: list[str]) -> None:
        for f in fragment_ids:
            if f in self._timers:
                self._timers.pop(f)[1].cancel()

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                self._last_frame = time.perf_counter()
                self._receive(frame, self._last_frame)
        except websockets.ConnectionClosed as e:
            self._closed_because = f"the server closed the session: {e}"
        except Exception as e:  # noqa: BLE001  a reader that died silently would look like a server that went quiet
            self._closed_because = f"this client failed reading a frame: {type(e).__name__}: {e}"
            traceback.print_exc()
        else:
            self._closed_because = "the server closed the session"
        self._stop_timers(list(self._timers))
        for f in self._waiters + ([self._pending.future] if self._pending else []):
            if not f.done():
                f.set_exception(ProtocolError(self._closed_because))
        await self._ws.close()  # after a failed read the server would otherwise keep a session nobody reads

    def _receive(self, frame: bytes, now: float) -> None:
        msg = ForwardMsg()
        msg.ParseFromString(frame)
        kind = msg.WhichOneof("type")
        pending = self._pending
        if pending:
            pending.frames += 1
            pending.nbytes += len(frame)
        if pending and kind in ("new_session", "script_finished"):
            what = (
                ("fragment start" if msg.metadata.run.fragment_ids else "full start")
                if kind == "new_session"
                else ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
            )
            pending.events.append(f"{now - pending.sent:.1f} s {what}")
        if kind == "new_session":  # sent at the start of every run; a fragment run names its fragments
            fragments = tuple(msg.metadata.run.fragment_ids)
            self._run, self._building, self._exec_s = (now, fragments), {}, None
            if not fragments:
                self._stop_timers(list(self._timers))  # a full run registers its fragments' timers again
                if pending:
                    pending.started = now
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._building[tuple(msg.metadata.delta_path)] = (msg.delta.new_element, msg.delta.fragment_id)
        elif kind == "page_profile":
            self._exec_s = msg.page_profile.exec_time / 1e6  # microseconds
        elif kind == "page_info_changed":
            self.address = msg.page_info_changed.query_string
        elif kind == "auto_rerun":
            f, interval = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
            if f and self._timers.get(f, (None,))[0] != interval:
                self._stop_timers([f])
                self._timers[f] = (interval, asyncio.create_task(self._auto_rerun(f, interval)))
        elif kind == "stop_auto_rerun":
            self._stop_timers(list(msg.stop_auto_rerun.fragment_ids))
        elif kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self._finish(ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished), now)

    def _finish(self, status: str, now: float) -> None:
        started, fragments = self._run or (now, ())
        elements, drawn_by = dict(self.page.elements), dict(self._fragments)
        if fragments:  # a fragment redraws only its own elements: the rest of the page stays
            for path in [p for p, f in drawn_by.items() if f in fragments]:
                del elements[path], drawn_by[path]
        else:  # a full run: what it did not send is gone from the page
            elements, drawn_by = {}, {}
        for path, (element, fragment_id) in self._building.items():
            elements[path], drawn_by[path] = element, fragment_id
        # Only an element this run drew can carry a value the script set now; one left from an earlier run still
        # says set_value, but its value has been sent back (and maybe changed by the user) since.
        fresh = {id(e) for e, _ in self._building.values()}
        self.page, self._fragments, self._building, self._run = Page(elements), drawn_by, {}, None
        self.page_time = now
        held, self._values = self._values, {}
        for element in self.page.elements.values():  # like the frontend, forget widgets no longer shown
            k = element.WhichOneof("type")
            if k in WIDGETS:
                proto = getattr(element, k)
                setting = id(element) in fresh and proto.set_value
                self._values[proto.id] = (
                    k,
                    shown_value(k, proto) if setting or proto.id not in held else held[proto.id][1],
                )
        pending = self._pending
        # A run that started before the request (its new_session came first) is not the one the request asked
        # for, and neither is a fragment run: a request from this client always starts a full run.
        ours = pending is not None and not pending.future.done() and pending.started is not None and not fragments
        run = Run(
            pending.sent if ours else None,
            started,
            now,
            status,
            bool(fragments),
            self._exec_s,
            pending.frames if ours else 0,
            pending.nbytes if ours else 0,
        )
        self.runs.append(run)
        if ours:
            pending.future.set_result(run)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()
