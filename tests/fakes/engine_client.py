"""A typed fake of dni_client.Client that runs the real engine in-process.

The plugin's unit tests use it with the fake `krita` module: the pixels that come back are
what the server would compute, so the tests check real results without sockets. `mode`
switches on the faults the plugin must survive (backend gone mid-job, slow jobs to cancel).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dni.engine import Engine
from dni.server import layouts
from dni_client.client import Client, ConnectionLost, Event, Result, ServerError


class EngineClient(Client):
    engine: Engine | None = None
    mode = "ok"  # "ok", "lost" (connection_lost on poll), "hold" (never finishes)
    instances: list[EngineClient] = []

    def __init__(self, endpoint: str, **kwargs: Any) -> None:
        self.endpoint = endpoint
        self.timeout = float(kwargs.get("timeout", 30.0))
        self.kwargs = kwargs
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cancelled: list[str] = []
        self.closed = False
        self.submitted: list[dict[str, Any]] = []
        self.lost_now: list[str] = []  # jobs to report lost at the next poll, alone
        self.installs: dict[str, str] = {}  # install id -> family, run at the next poll
        self._n = 0
        EngineClient.instances.append(self)

    def hello(self) -> dict[str, Any]:
        return {"protocol": 1, "devices": ["cpu"], "server": "fake"}

    def families(self) -> list[dict[str, Any]]:
        assert self.engine is not None
        return self.engine.families()

    def submit(self, family: str, width: int, height: int, layout: str, pixels: Any, *,
               strength: float | None = None, weights: Any = None, mask: Any = None,
               strength_map: Any = None, mode: str = "network", preview: bool = False,
               tile: int | None = None, job_id: str | None = None) -> str:
        self._n += 1
        job_id = f"job{self._n}"
        job = dict(family=family, width=width, height=height, layout=layout,
                   pixels=bytes(pixels), strength=strength, weights=weights, mask=mask,
                   strength_map=strength_map, mode=mode, preview=preview)
        self.jobs[job_id] = job
        self.submitted.append(job)
        return job_id

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)

    def catalogue(self) -> list[dict[str, Any]]:
        """The real catalogue (DNI_CATALOGUE in tests), installed = in the user folder."""
        from dni import catalogue, install
        from dni.registry import user_family_dir

        return [dict(e.to_dict(), installed=install.installed(user_family_dir(), e.name))
                for e in catalogue.load(catalogue.catalogue_path())]

    def install(self, family: str) -> str:
        self._n += 1
        install_id = f"install{self._n}"
        self.installs[install_id] = family
        return install_id

    def _run_install(self, install_id: str, family: str) -> list[Event]:
        """The real download and install, in this process, with its events."""
        from dni import catalogue, install
        from dni.errors import DNIError

        events: list[Event] = []
        try:
            entry = catalogue.find(catalogue.load(catalogue.catalogue_path()), family)
            done = [0]

            def progress(nbytes: int) -> None:
                done[0] += nbytes
                events.append(Event("progress", install_id, {
                    "kind": "progress", "id": install_id, "stage": "downloading",
                    "fraction": done[0] / entry.size}))

            manifest = install.install(entry, progress=progress)
            verdicts = [{"member": label, "median": median, "verdict": verdict}
                        for label, median, verdict in install.correlation_verdicts(manifest)]
            events.append(Event("installed", install_id, {
                "kind": "installed", "id": install_id, "family": family,
                "verdicts": verdicts}))
        except DNIError as exc:
            events.append(Event("error", install_id, {"kind": "error", "id": install_id,
                                                      "code": exc.code, "message": str(exc)}))
        return events

    def _run(self, job: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        assert self.engine is not None
        w, h = job["width"], job["height"]
        image = layouts.to_array(job["pixels"], w, h, job["layout"])
        mask = None if job["mask"] is None else layouts.plane_to_array(job["mask"], w, h)
        auto_map = job["strength_map"] == "auto"
        smap = job["strength_map"]
        if smap is not None and not auto_map:
            smap = layouts.plane_to_array(smap, w, h)
        found = {}
        if auto_map or job["strength"] == "auto":  # as the server's worker: say what it chose
            found["auto"] = self.engine.estimate(job["family"], np.array(image),
                                                 per_region=auto_map).to_json()
        out = self.engine.run(job["family"], np.array(image), strength=job["strength"],
                              weights=job["weights"], mask=mask, strength_map=smap,
                              mode=job["mode"])
        data = layouts.to_bytes(out, job["layout"])
        header = {**found, "kind": "result", "width": int(out.shape[1]),
                  "height": int(out.shape[0]), "layout": layouts.resolve(job["layout"])}
        return header, data

    def poll(self, timeout_ms: int = 0) -> list[Event]:
        events = [Event("error", job_id, {"kind": "error", "id": job_id,
                                          "code": "connection_lost",
                                          "message": "no sign of this job for 20 s"})
                  for job_id in self.lost_now]
        self.lost_now = []
        installs, self.installs = self.installs, {}
        for install_id, family in installs.items():
            events += self._run_install(install_id, family)
        for job_id in list(self.jobs):
            job = self.jobs[job_id]
            if job_id in self.cancelled:
                del self.jobs[job_id]
                events.append(Event("error", job_id, {"kind": "error", "id": job_id,
                                                      "code": "cancelled",
                                                      "message": "cancelled"}))
            elif self.mode == "lost":
                del self.jobs[job_id]
                events.append(Event("error", job_id, {
                    "kind": "error", "id": job_id, "code": "connection_lost",
                    "message": "no answer for 20 s"}))
            elif self.mode == "hold":
                events.append(Event("progress", job_id, {"kind": "progress", "id": job_id,
                                                         "fraction": 0.5}))
            else:
                del self.jobs[job_id]
                header, data = self._run(job)
                header["id"] = job_id
                events.append(Event("result", job_id, header, data))
        return events

    def run(self, family: str, width: int, height: int, layout: str, pixels: Any, *,
            on_progress: Any = None, **options: Any) -> Result:
        job_id = self.submit(family, width, height, layout, pixels, **options)
        while True:
            for event in self.poll():
                if event.job_id != job_id:
                    continue
                if event.kind == "progress":
                    if on_progress is not None and on_progress(event.fraction, event.stage):
                        self.cancel(job_id)
                    continue
                if event.kind == "result":
                    return Result.from_event(event)
                if event.code == "connection_lost":
                    raise ConnectionLost(event.message)
                raise ServerError(event.code, event.message)

    def close(self) -> None:
        self.closed = True
