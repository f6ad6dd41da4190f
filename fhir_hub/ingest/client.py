"""``fhir-hub ingest`` and ``fhir-hub replay``: send files to a running hub's ``$ingest`` as any client does.

The command holds no mapping logic and no store access: it POSTs each file as it is, with the caller's
token, so the hub's security, archive and report apply exactly as for a hospital system calling the API.
Files are sent one by one in a stable order (folders walked in name order; CSV patient files before the
files that refer to patients), with a progress bar, and a summary table at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from adapters.registry import adapters, ingest_order

DEFAULT_URL = "http://127.0.0.1:8080"
_SKIPPED = {".md", ".txt", ".py", ".toml"}  # documentation beside data files is not data


@dataclass
class FileResult:
    path: str
    format: str = "-"
    accepted: int = 0
    rejected: int = 0
    created: int = 0
    existing: int = 0
    updated: int = 0
    warnings: int = 0
    archive: str = "-"
    queued: int | None = None  # a backfill: records queued (the hub's workers store them)
    problems: list[str] = field(default_factory=list)
    failed: str | None = None  # the request itself failed (HTTP error, connection)


def files_in(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() not in _SKIPPED
                      and not p.name.startswith(".")]
        else:
            found.append(path)
    return list(ingest_order(found))


def media_type_of(format_name: str | None) -> str:
    for adapter in adapters():
        if adapter.format == format_name:
            return adapter.media_types[0]
    return "application/octet-stream"  # the hub detects the format


def ingest_files(paths: list[Path], *, url: str, token: str | None, format_name: str | None,
                 progress: bool = True, transport: httpx.BaseTransport | None = None,
                 backfill: bool = False) -> list[FileResult]:
    """Send each file to ``$ingest``; ``backfill``: with ``Prefer: respond-async``, so the hub queues the
    records (highest risk first) and answers at once (the report then counts what the mapping said)."""
    headers = {"Accept": "application/fhir+json", "Content-Type": media_type_of(format_name)}
    if backfill:
        headers["Prefer"] = "respond-async"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    results = []
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=600, transport=transport) as client, \
            tqdm(total=len(paths), unit="file", disable=not progress, file=sys.stderr) as bar:
        for path in paths:
            bar.set_postfix_str(path.name[-40:])
            params = {"filename": path.name, **({"format": format_name} if format_name else {})}
            results.append(_send(client, "/$ingest", str(path), content=path.read_bytes(), params=params))
            bar.update(1)
    return results


def replay_archives(archive_ids: list[str], *, url: str, token: str | None,
                    transport: httpx.BaseTransport | None = None) -> list[FileResult]:
    headers = {"Accept": "application/fhir+json", **({"Authorization": f"Bearer {token}"} if token else {})}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=600, transport=transport) as client:
        return [_send(client, "/$replay", archive, params={"archive": archive}) for archive in archive_ids]


def _send(client: httpx.Client, path: str, name: str, *, params: dict[str, str], content: bytes = b"") -> FileResult:
    result = FileResult(name)
    try:
        answer = client.post(path, content=content, params=params)
    except httpx.HTTPError as exc:
        result.failed = f"could not reach the hub ({exc})"
        return result
    body = _json(answer)
    if answer.status_code not in (200, 202) or body.get("resourceType") != "Parameters":
        issues = body.get("issue") or [{}]
        result.failed = f"HTTP {answer.status_code}: {issues[0].get('diagnostics', answer.text[:200])}"
        return result
    values = {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None)
              for p in body.get("parameter", []) if p.get("name") != "notMapped"}
    result.format = str(values.get("format") or "-")
    result.archive = str(values.get("archive") or "-")
    for name in ("accepted", "rejected"):
        setattr(result, name, int(values.get(f"records{name.title()}") or 0))
    if values.get("recordsQueued") is not None:
        result.queued = int(values["recordsQueued"] or 0)
    for name in ("created", "existing", "updated"):
        setattr(result, name, int(values.get(name) or 0))
    outcome: dict[str, Any] = next(
        (p["resource"] for p in body.get("parameter", []) if p.get("name") == "outcome"), {"issue": []})
    result.warnings = sum(1 for i in outcome["issue"] if i.get("severity") == "warning")
    result.problems = [i["diagnostics"] for i in outcome["issue"] if i.get("severity") == "error"]
    return result


def _json(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def summary(results: list[FileResult]) -> str:
    """A plain-text table a person can read in a terminal or a log."""
    head = ("file", "format", "accepted", "rejected", "created", "existing", "updated", "warnings", "archive")
    rows = [(Path(r.path).name, r.format, str(r.accepted), str(r.rejected), str(r.created), str(r.existing),
             str(r.updated), str(r.warnings), r.archive) for r in results]
    totals = ("total", "", *(str(sum(int(row[i]) for row in rows)) for i in range(2, 8)), "")
    widths = [max(len(str(row[i])) for row in (head, *rows, totals)) for i in range(len(head))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(str(c).ljust(w) if i < 2 or i == 8 else str(c).rjust(w) for i, (c, w) in
                         enumerate(zip(row, widths, strict=True)))

    out = [line(head), line(tuple("-" * w for w in widths)), *map(line, rows), line(totals)]
    for r in results:
        if r.failed:
            out.append(f"FAILED {r.path}: {r.failed}")
        if r.queued is not None:
            out.append(f"queued {r.queued} record(s) of {Path(r.path).name}: watch `fhir-hub queue status` or "
                       f"GET $ingest-status?archive={r.archive}")
        out += [f"rejected in {Path(r.path).name}: {p}" for p in r.problems]
    return "\n".join(out)


def exit_code(results: list[FileResult]) -> int:
    """0: everything stored; 1: some records rejected (see the table); 2: a file could not be sent at all."""
    if any(r.failed for r in results):
        return 2
    return 1 if any(r.rejected for r in results) else 0
