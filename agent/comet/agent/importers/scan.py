"""Where the agent looks for other products' settings: its own user's home, every home
under /home when it runs as root (a system service backs up its users), and /etc."""

from __future__ import annotations

import os
from pathlib import Path

from comet.agent.importers.detect import detect
from comet.agent.importers.source import DetectResult, ImportSource


def detect_everywhere(
    *, homes_root: Path = Path("/home"), etc: Path = Path("/etc")
) -> DetectResult:
    homes = [Path.home()]
    if os.geteuid() == 0 and homes_root.is_dir():
        homes += sorted(p for p in homes_root.iterdir() if p.is_dir())
    sources: dict[str, ImportSource] = {}
    warnings: list[str] = []
    for index, home in enumerate(homes):
        # /etc and the environment are the same for every home: read them once.
        result = detect(
            home=home,
            etc=etc if index == 0 else home / ".no-etc",
            env=os.environ if index == 0 else {},
        )
        for source in result.sources:
            sources.setdefault(source.source_id, source)
        warnings += result.warnings
    return DetectResult(sources=list(sources.values()), warnings=warnings)
