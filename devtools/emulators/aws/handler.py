"""One streaming request, without I/O: check the headers and signature, then turn received
body bytes into stored audio and answer events (transcript segments or an exception)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devtools.emulators.aws import model
from devtools.emulators.aws.faults import AwsFault, AwsFaults
from devtools.emulators.aws.sessions import RESUME_WINDOW_S, Session, SessionStore, StreamRecord
from devtools.emulators.aws.verify import EventChain, SignatureError, verify_request
from edge_recorder.config.services.aws import DOMAIN_RE, SUBSCRIPTION_RE
from edge_recorder.uplinks.aws import eventstream as es
from edge_recorder.uplinks.aws.protocol import CONNECT_HEALTH, PROFILE_BY_PATH, ServiceProfile
from edge_recorder.uplinks.aws.signing import Credentials

SESSION_RE = re.compile(
    r".*[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}.*"
)


class Rejected(Exception):
    """Refuse the request before 200: HTTP status, AWS error type, message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_type = status, error_type


class ModelViolation(Exception):
    """An event that AWS's model for the service does not allow (a ValidationException)."""


@dataclass
class Output:
    frames: list[bytes] = field(default_factory=list)
    end: bool = False  # end the response stream after the frames
    drop: bool = False  # abort the connection (fault)
    early: bool = False  # an error answer while the client may still be sending


class StreamHandler:
    def __init__(
        self,
        store: SessionStore,
        faults: AwsFaults,
        creds: Credentials,
        segment_s: float,
        supersede: Callable[[str], None],
        clock: Callable[[], dt.datetime] | None = None,
        max_audio_s: float | None = None,
    ) -> None:
        self.store, self.faults, self.creds, self.segment_s = store, faults, creds, segment_s
        self._supersede = supersede
        self._now = clock or (lambda: dt.datetime.now(dt.UTC))
        self.profile: ServiceProfile = CONNECT_HEALTH
        self.session: Session | None = None
        self.record: StreamRecord | None = None
        self.response_headers: list[tuple[str, str]] = []
        self._chain: EventChain | None = None
        self._outer = es.Decoder()
        self._configured = False
        self._final_frame = False
        self._fault: AwsFault | None = None
        self._max_audio_s = max_audio_s

    # ---- request ---------------------------------------------------------------------------
    def start(self, method: str, authority: str, path: str, headers: dict[str, str]) -> None:
        """Validate and sign-check the request; raises Rejected."""
        profile = PROFILE_BY_PATH.get(path.split("?", 1)[0])  # AWS's SDKs send a bare `?`
        if method != "POST" or profile is None:
            raise Rejected(404, "ResourceNotFoundException", f"no such operation {method} {path}")
        self.profile = profile
        try:
            region, seed = verify_request(
                method, authority, path, headers, self.creds, profile.signing_name, self._now()
            )
        except SignatureError as exc:
            status = 401 if exc.exception_type == "AccessDeniedException" else 403
            raise Rejected(status, exc.exception_type, str(exc)) from exc
        self._chain = EventChain(self.creds, region, profile.signing_name, seed)
        fault = self.faults.take("http_error")
        if fault is not None:
            raise Rejected(fault.status, fault.exception, "injected fault")
        p = profile.header_prefix
        sid = headers.get(p + "session-id", "")
        if profile is not CONNECT_HEALTH and not sid:
            sid = str(uuid.uuid4())
        rate_text, encoding = (
            headers.get(p + "sample-rate", ""),
            headers.get(p + "media-encoding", ""),
        )
        lang = headers.get(p + "language-code", "")
        problems = []
        if len(sid) != 36 or not SESSION_RE.fullmatch(sid):
            problems.append("session-id must be a 36-character UUID")
        languages = (
            model.enum("MedicalScribeLanguageCode") if profile is CONNECT_HEALTH else ["en-US"]
        )
        if lang not in languages:
            problems.append("language-code must be " + " or ".join(languages))
        low, high = profile.rate_range
        if not rate_text.isdigit() or not low <= int(rate_text) <= high:
            problems.append(f"sample-rate must be {low}-{high}")
        if encoding not in profile.encodings:
            problems.append("media-encoding must be " + "|".join(profile.encodings))
        if headers.get("content-type") != "application/vnd.amazon.eventstream":
            problems.append("content-type must be application/vnd.amazon.eventstream")
        domain, sub = headers.get(p + "domain-id", ""), headers.get(p + "subscription-id", "")
        if profile is CONNECT_HEALTH:
            if not (DOMAIN_RE.fullmatch(domain) and 20 <= len(domain) <= 25):
                problems.append("domain-id must match (hai-|dom-)[a-z0-9]+, 20-25 chars")
            if not SUBSCRIPTION_RE.fullmatch(sub):
                problems.append("subscription-id must match sub-[a-zA-Z0-9]{21}")
        if problems:
            raise Rejected(400, "ValidationException", "; ".join(problems))
        self.session = self._session_for(sid, int(rate_text), encoding, lang, domain, sub)
        self.response_headers = [
            (p + "session-id", sid),
            (p + "sample-rate", rate_text),
            (p + "media-encoding", encoding),
            (p + "language-code", lang),
            ("x-amzn-request-id", str(uuid.uuid4())),
        ]
        if profile is CONNECT_HEALTH:  # the model's output headers
            self.response_headers += [(p + "domain-id", domain), (p + "subscription-id", sub)]
        self._fault = self.faults.take("exception") or self.faults.take("drop")

    def _session_for(
        self, sid: str, rate: int, encoding: str, lang: str, domain: str, sub: str
    ) -> Session:
        known = self.store.sessions.get(sid)
        now = self._now().timestamp()
        if known is None:
            session = Session(sid, self.profile.name, now, rate, encoding, lang, domain, sub)
            self.record = self.store.start_stream(session, resumed=False)
            return session
        if known.service != self.profile.name:
            raise Rejected(409, "ConflictException", "session id belongs to another service")
        if known.completed:
            raise Rejected(409, "ConflictException", "session already ended (END_OF_SESSION)")
        if now - known.created_at >= RESUME_WINDOW_S:
            raise Rejected(400, "ValidationException", "session can no longer be resumed")
        if (known.sample_rate, known.media_encoding) != (rate, encoding):
            raise Rejected(400, "ValidationException", "resume with other audio settings")
        if self.faults.take("refuse_resume") is not None:
            raise Rejected(409, "ConflictException", "resume refused (injected)")
        if known.active:
            self._supersede(sid)  # the newer stream wins; the old one is dropped
            for st in known.streams:
                if st.ended == "open":
                    self.store.end_stream(known, st, "broken")
        self.record = self.store.start_stream(known, resumed=True)
        return known

    # ---- body ------------------------------------------------------------------------------
    def feed(self, data: bytes) -> Output:
        out = Output()
        try:
            for envelope in self._outer.feed(data):
                self._envelope(envelope, out)
                if out.end or out.drop:
                    break
        except es.FramingError as exc:
            self._exception(out, "BadRequestException", str(exc), "validationException")
        except ModelViolation as exc:
            self._exception(out, "ValidationException", str(exc), "validationException")
        except SignatureError as exc:
            self._exception(out, exc.exception_type, str(exc), exc.exception_type)
        return out

    def end_of_body(self) -> Output:
        out = Output(end=True)
        if not self._final_frame:
            self._exception(
                out,
                "BadRequestException",
                "stream ended without the empty signed frame",
                "validationException",
            )
            out.early = False  # the client already ended its side
        elif self.session is not None and self.record is not None:
            how = "end_of_session" if self.session.completed else "broken"
            self.store.end_stream(self.session, self.record, how)
        return out

    def broken(self) -> None:
        if self.session is not None and self.record is not None:
            self.store.end_stream(self.session, self.record, "broken")

    def _envelope(self, envelope: es.Message, out: Output) -> None:
        assert self._chain is not None
        if self._final_frame:
            raise SignatureError("BadRequestException", "data after the final signed frame")
        self._chain.check(envelope.headers, envelope.payload, self._now())
        if not envelope.payload:
            self._final_frame = True
            if self.session is not None and self.session.completed:
                out.end = True
                self.end_of_body_ok()
            return
        inner = list(es.Decoder().feed(envelope.payload))
        if len(inner) != 1:
            raise es.FramingError("envelope must carry exactly one event")
        self._event(inner[0], out)

    def end_of_body_ok(self) -> None:
        if self.session is not None and self.record is not None:
            self.store.end_stream(self.session, self.record, "end_of_session")

    def _event(self, msg: es.Message, out: Output) -> None:
        assert self.session is not None and self.record is not None
        conf, audio, control, _ = self.profile.events
        audio_types = {audio, "audioEvent"} if self.profile is CONNECT_HEALTH else {audio}
        etype = msg.headers.get(":event-type")
        if msg.headers.get(":message-type") != "event" or etype not in {
            conf,
            control,
            *audio_types,
        }:
            raise es.FramingError(f"unexpected event {etype!r}")
        self.record.events += 1
        if not self._configured:
            if etype != conf:
                raise es.FramingError(f"the first event must be {conf}")
            doc = self._json_event(msg, conf)
            self.session.configuration = doc
            self._configured = True
            return
        if etype == conf:
            raise es.FramingError(f"{conf} only once, first")
        if etype == control:
            doc = self._json_event(msg, control)
            if doc.get("type", doc.get("Type")) != "END_OF_SESSION":
                raise es.FramingError("sessionControlEvent type must be END_OF_SESSION")
            self.session.completed = True
            self._segments(out, tail=True)
            self.store.save(self.session)
            return
        payload = msg.payload
        if etype == "audioEvent" and self.profile is CONNECT_HEALTH:
            # The JSON audio event: {"audioChunk": "<base64>"}; the bytes are what it encodes.
            try:
                payload = base64.b64decode(self._json_event(msg, "audioEvent")["audioChunk"])
            except binascii.Error as exc:
                raise ModelViolation(f"audioEvent.audioChunk is not base64: {exc}") from None
        if self.session.completed:
            raise es.FramingError("audio after END_OF_SESSION")
        self.store.append(self.session, self.record, payload)
        limit = self._max_audio_s or self.profile.max_audio_s
        seconds = self.session.seconds(self.session.audio_bytes)
        if limit is not None and seconds is not None and seconds > limit:
            self._exception(
                out, "BadRequestException", f"more than {limit:g}s of audio", "validationException"
            )
            return
        fault = self._fault
        if fault is not None and self.record.bytes >= fault.after_bytes:
            self._fault = None
            if fault.kind == "drop":
                out.drop = True
                return
            self._exception(out, fault.exception, "injected fault", fault.exception)
            return
        self._segments(out, tail=False)

    def _json_event(self, msg: es.Message, etype: str) -> dict[str, Any]:
        """A JSON event's body, checked against AWS's model for Connect Health."""
        try:
            doc = json.loads(msg.payload or b"null")
        except ValueError as exc:
            raise es.FramingError(f"{etype} must be JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise es.FramingError(f"{etype} must be a JSON object")
        if self.profile is CONNECT_HEALTH:
            problems = model.validate(doc, model.input_event_shapes()[etype], etype)
            if problems:
                raise ModelViolation("; ".join(problems[:8]))
        return doc

    def _segments(self, out: Output, tail: bool) -> None:
        assert self.session is not None
        total = self.session.seconds(self.session.audio_bytes)
        if total is None:
            return
        while True:
            k = self.session.segments_sent
            begin, end = k * self.segment_s, (k + 1) * self.segment_s
            if end > total:
                if not tail or total <= begin:
                    return
                end = total
            out.frames.append(self._segment(k, begin, (begin + end) / 2, partial=True))
            out.frames.append(self._segment(k, begin, end, partial=False))
            self.session.segments_sent += 1

    def _segment(self, k: int, begin: float, end: float, partial: bool) -> bytes:
        if self.profile is CONNECT_HEALTH:
            seg = {
                "segmentId": f"seg-{k}",
                "audioBeginOffset": _ms(begin),
                "audioEndOffset": _ms(end),
                "isPartial": partial,
                "channelId": "ch_0",
                "content": "[emulated]",
            }
            body = {"transcriptSegment": seg}
        else:
            seg = {
                "SegmentId": f"seg-{k}",
                "BeginAudioTime": _ms(begin),
                "EndAudioTime": _ms(end),
                "IsPartial": partial,
                "ChannelId": "ch_0",
                "Content": "[emulated]",
            }
            body = {"TranscriptSegment": seg}
        return es.event(self.profile.events[3], json.dumps(body).encode(), "application/json")

    def _exception(self, out: Output, name: str, message: str, connect_name: str) -> None:
        if self.profile is CONNECT_HEALTH:
            out.frames.append(es.exception(connect_name, message, key="message"))
        else:
            out.frames.append(es.exception(name, message))
        out.end = out.early = True
        if self.session is not None and self.record is not None:
            self.store.end_stream(self.session, self.record, "rejected")


def _ms(seconds: float) -> float:
    """Whole milliseconds, rounded down: an end offset never claims audio not received."""
    return math.floor(seconds * 1000) / 1000
