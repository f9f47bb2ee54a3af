"""The watched folder: teams drop adapter folders on shared storage and a beat task registers them.

Layout: ``EVALHUB_WATCH_FOLDER/<project slug>/<base model name>/<adapter folder>/`` (an adapter folder holds
adapter_config.json; name, version and parent come from its evalhub.json as with `register_adapter`). A
folder is taken once nothing in it changed for EVALHUB_WATCH_SETTLE_SECONDS (a copy still in progress
waits), and only once: a folder already registered in the project is skipped, and a folder that failed the
checks is skipped until its files change (the failure is logged once and kept in WatchRefusal).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.conf import settings

from evalhub.accounts.models import Project
from evalhub.catalog.models import Adapter, BaseModel
from evalhub.catalog.services import adapter_register
from evalhub.errors import DomainError

log = logging.getLogger(__name__)


def _newest_mtime(folder: Path) -> float:
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*") if p.is_file())])


def watch_folder_scan(*, root: str | None = None, now: float | None = None) -> list[Adapter]:
    """Register every settled, new adapter folder under the watched root. Returns the adapters registered."""
    from evalhub.continuous.models import WatchRefusal

    folder = root if root is not None else settings.EVALHUB_WATCH_FOLDER
    if not folder:
        return []
    base = Path(folder)
    if not base.is_dir():
        log.warning("the watched folder %s does not exist", base)
        return []
    now = now if now is not None else time.time()
    registered: list[Adapter] = []
    for project_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        project = Project.objects.filter(slug=project_dir.name).first()
        if project is None:
            continue
        for model_dir in sorted(p for p in project_dir.iterdir() if p.is_dir()):
            base_model = BaseModel.objects.filter(project=project, name=model_dir.name).first()
            if base_model is None:
                continue
            for adapter_dir in sorted(p for p in model_dir.iterdir() if (p / "adapter_config.json").is_file()):
                resolved = str(adapter_dir.resolve())
                if Adapter.objects.filter(project=project, folder=resolved).exists():
                    continue
                changed = _newest_mtime(adapter_dir)
                if now - changed < settings.EVALHUB_WATCH_SETTLE_SECONDS:
                    continue
                if WatchRefusal.objects.filter(project=project, folder=resolved, mtime=changed).exists():
                    continue
                try:
                    registered.append(adapter_register(project=project, base_model=base_model, folder=resolved))
                except DomainError as exc:
                    log.warning("watched folder %s refused: %s", resolved, exc)
                    WatchRefusal.objects.update_or_create(
                        project=project, folder=resolved, defaults={"mtime": changed, "reason": str(exc)[:2000]}
                    )
    return registered
