"""What the Corti uplink remembers per encounter (in the engine's `UplinkState`), and its keys.

Keys start with `corti:<encounter>:` so the engine drops them once the encounter is handed to
processing. Values are Corti ids or numbers, never audio or patient data:

    corti:<enc>:interaction           interaction id
    corti:<enc>:redeliver             "1": the interaction was lost mid-upload (see processing)
    corti:<enc>:seqs                  "1,2,…" recordings with an upload plan
    corti:<enc>:<seq>:plan            "<length>:<part_bytes>" fixed at the first attempt
    corti:<enc>:<seq>:part<n>         recordingId of part n, written right after its 2xx
                                      ("" = the service lost it: upload again)
    corti:<enc>:transcript:<rid>      transcript id of recording <rid>
    corti:<enc>:document:<key>        document id per templateKey
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_recorder.uplinks.base import UplinkState
from edge_recorder.uplinks.corti.parts import UploadPlan


@dataclass(frozen=True)
class Encounter:
    """The state keys of one encounter, with typed accessors."""

    state: UplinkState
    encounter_id: str

    @property
    def prefix(self) -> str:
        return f"corti:{self.encounter_id}:"

    def _key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    # interaction -------------------------------------------------------------------------
    @property
    def interaction(self) -> str | None:
        return self.state.get(self._key("interaction")) or None

    def set_interaction(self, interaction_id: str) -> None:
        self.state.put(self._key("interaction"), interaction_id)

    def forget(self) -> None:
        """The service lost the interaction: everything about it is void."""
        self.state.drop(self.prefix)

    @property
    def redeliver(self) -> bool:
        """Recordings went to an interaction the service lost: deliver the encounter again."""
        return bool(self.state.get(self._key("redeliver")))

    def mark_redeliver(self) -> None:
        self.state.put(self._key("redeliver"), "1")

    def clear_redeliver(self) -> None:
        self.state.put(self._key("redeliver"), "")

    # recordings --------------------------------------------------------------------------
    @property
    def sequences(self) -> list[int]:
        raw = self.state.get(self._key("seqs")) or ""
        return sorted({int(s) for s in raw.split(",") if s})

    def plan(self, seq: int) -> UploadPlan | None:
        raw = self.state.get(self._key(seq, "plan"))
        return UploadPlan.decode(raw) if raw else None

    def set_plan(self, seq: int, plan: UploadPlan) -> None:
        self.state.put(self._key(seq, "plan"), plan.encode())
        seqs = sorted({*self.sequences, seq})
        self.state.put(self._key("seqs"), ",".join(str(s) for s in seqs))

    def part(self, seq: int, number: int) -> str | None:
        return self.state.get(self._key(seq, f"part{number}")) or None

    def set_part(self, seq: int, number: int, recording_id: str) -> None:
        self.state.put(self._key(seq, f"part{number}"), recording_id)

    def known_parts(self) -> set[str]:
        """Every recording id the service acknowledged for this encounter's parts."""
        ids = set()
        for seq in self.sequences:
            plan = self.plan(seq)
            for number in range(1, (plan.count if plan else 0) + 1):
                if held := self.part(seq, number):
                    ids.add(held)
        return ids

    @property
    def in_flight(self) -> str | None:
        """`"<seq>:<part>"` of an upload that was started and has no acknowledged id yet."""
        return self.state.get(self._key("inflight")) or None

    def set_in_flight(self, seq: int, number: int) -> None:
        self.state.put(self._key("inflight"), f"{seq}:{number}")

    def clear_in_flight(self) -> None:
        self.state.put(self._key("inflight"), "")

    def lose_part(self, seq: int, number: int) -> None:
        """Tombstone ("" reads as absent): `drop` would also hit part1x for part1."""
        self.state.put(self._key(seq, f"part{number}"), "")

    # processing --------------------------------------------------------------------------
    def transcript(self, recording_id: str) -> str | None:
        return self.state.get(self._key("transcript", recording_id)) or None

    def set_transcript(self, recording_id: str, transcript_id: str) -> None:
        self.state.put(self._key("transcript", recording_id), transcript_id)

    def document(self, template_key: str) -> str | None:
        return self.state.get(self._key("document", template_key)) or None

    def set_document(self, template_key: str, document_id: str) -> None:
        self.state.put(self._key("document", template_key), document_id)
