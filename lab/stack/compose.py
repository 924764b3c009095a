"""The compose backend: ``docker compose`` brings the stack up and down; the Docker API acts on containers.

Same host ports as the local backend, all on 127.0.0.1. Only containers of the
compose project ``chaoslab`` that carry the ``com.chaoslab.project`` label are
ever touched. Errors from the engine become StackErrors naming the container
and the cause.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config import Settings
from ..errors import BackendUnavailable, StackError, StartTimeout
from . import health, limits, procs
from . import state as state_file
from .procs import ProcessRecord
from .state import ComponentState, StackState

PROJECT = "chaoslab"  # the default project (LAB_COMPOSE_PROJECT names another: Settings.compose_project)
LABEL = "com.chaoslab.project"
SERVICES = {"proxy": "toxiproxy", "postgres": "postgres", "kafka": "kafka"}
DEFAULT_IMAGES = {"postgres": "postgres:16", "kafka": "apache/kafka:3.9.0", "proxy": "ghcr.io/shopify/toxiproxy:2.12.0"}
IMAGE_VARIABLES = {"postgres": "LAB_POSTGRES_IMAGE", "kafka": "LAB_KAFKA_IMAGE", "proxy": "LAB_PROXY_IMAGE"}
FLAVOUR_LABEL = "com.chaoslab.kafka-flavour"  # set by stand-in images; the official image is Apache Kafka
STAND_IN_LABEL = "com.chaoslab.stand-in"  # set by compose/images/build.sh: the proxy stand-in is lab.proxy
COMPOSE_FILE = Path(__file__).resolve().parent / "docker-compose.yml"  # ships in the wheel
API_TIMEOUT_S = 30.0


def images(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The image of each component: LAB_*_IMAGE when set, else the pinned official one."""
    env = os.environ if env is None else env
    return {name: env.get(IMAGE_VARIABLES[name]) or default for name, default in DEFAULT_IMAGES.items()}


def compose_command(*args: str, project: str = PROJECT, compose_file: Path = COMPOSE_FILE) -> list[str]:
    return ["docker", "compose", "-f", str(compose_file), "-p", project, *args]


def up_command(timeout_s: float, project: str = PROJECT) -> list[str]:
    return compose_command("up", "-d", "--wait", "--wait-timeout", str(int(timeout_s)), *SERVICES.values(),
                           project=project)


def down_command(purge: bool, project: str = PROJECT) -> list[str]:
    return compose_command("down", "--remove-orphans", *(["--volumes"] if purge else []), project=project)


def compose_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """What docker compose interpolates into docker-compose.yml: these settings' ports and password."""
    return {**(os.environ if base is None else base), **settings.to_env(),
            "LAB_PG_PASSWORD": settings.pg_password}


def _translate(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Engine errors -> StackError naming what was being done (the one boundary with the Docker SDK).

    When the outermost such operation of a thread ends, the client's pooled connections to the engine are
    closed: the lab runs the workload in its own process, and a socket the backend kept open between
    operations would count as the workload's (the "no fd or connection growth" check samples this process).
    """
    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        def translated(self: "ComposeBackend", *args: Any, **kwargs: Any) -> Any:
            import docker.errors
            import requests.exceptions

            depth = getattr(self._calls, "depth", 0)
            self._calls.depth = depth + 1
            try:
                return method(self, *args, **kwargs)
            except docker.errors.NotFound as err:
                raise StackError(f"{what} {' '.join(map(str, args))}: the container is gone "
                                 f"({err.explanation or err})") from None
            except docker.errors.APIError as err:
                raise StackError(f"{what} {' '.join(map(str, args))}: the Docker engine refused: "
                                 f"{err.explanation or err}") from None
            except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
                raise StackError(f"{what} {' '.join(map(str, args))}: no answer from the Docker engine "
                                 f"({type(err).__name__}: {err})") from None
            finally:
                self._calls.depth = depth
                if depth == 0:
                    self._release()
        translated.__doc__ = method.__doc__
        return translated
    return wrap


class ComposeBackend:
    name = "compose"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._docker: Any = None
        self._calls = threading.local()  # per thread: how deep in translated operations (see _translate)

    # -- the two ways to the engine --------------------------------------------------------------------

    def _run(self, argv: list[str], timeout_s: float) -> str:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                                    env=compose_env(self.settings), cwd=COMPOSE_FILE.parent)
        except FileNotFoundError:
            raise BackendUnavailable("the docker command is not installed: use the local backend "
                                     "(--backend local)") from None
        except subprocess.TimeoutExpired:
            raise StackError(f"`{' '.join(argv)}` did not finish within {timeout_s:g}s") from None
        if result.returncode != 0:
            raise StackError(f"`{' '.join(argv)}` failed: {(result.stderr or result.stdout).strip()}")
        return result.stdout

    def _client(self) -> Any:
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env(timeout=int(API_TIMEOUT_S))
            except docker.errors.DockerException as err:
                raise BackendUnavailable(f"no Docker engine answers: {err}") from None
        return self._docker

    def _release(self) -> None:
        """Closes the pooled connections to the engine; the client opens new ones when next used."""
        if self._docker is not None:
            self._docker.close()

    def _containers(self) -> dict[str, Any]:
        """{component: container} for the project's labelled containers (stopped ones too)."""
        found = self._client().containers.list(all=True, filters={"label": [
            f"com.docker.compose.project={self.settings.compose_project}", LABEL]})
        by_service = {c.labels.get("com.docker.compose.service"): c for c in found}
        return {name: by_service[service] for name, service in SERVICES.items() if service in by_service}

    def _container(self, component: str) -> Any:
        if component not in SERVICES:
            raise StackError(f"no component {component!r}: choose from {', '.join(SERVICES)}")
        container = self._containers().get(component)
        if container is None:
            raise StackError(f"component {component!r} has no container in compose project "
                             f"{self.settings.compose_project} (run `python -m lab up --backend compose`)")
        return container

    # -- up, down, status, logs ------------------------------------------------------------------------

    @_translate("bringing the compose stack up")
    def up(self) -> dict[str, str]:
        current = state_file.load(self.settings.state_path)
        if current is not None and current.backend != self.name:
            raise StackError(f"a {current.backend} stack is up; run `python -m lab down` first")
        before = {name: c.status for name, c in self._containers().items()}
        actions = {}
        for name, status in before.items():
            if status == "paused":
                self._container(name).unpause()
                actions[name] = "resumed"
            elif status == "running":
                actions[name] = "running"
        try:
            self._run(up_command(self.settings.start_timeout_s * 4, self.settings.compose_project),
                          self.settings.start_timeout_s * 5)
            asyncio.run(self._wait_probes(list(SERVICES)))
        except BaseException:
            if not before:  # nothing was up before this call: leave nothing behind
                try:
                    self._run(down_command(purge=False, project=self.settings.compose_project), 120)
                except StackError:
                    pass
            raise
        containers = self._containers()
        stack = StackState(self.name, {
            name: ComponentState(name, container=c.id, info={
                "service": SERVICES[name], "image": c.attrs["Config"]["Image"],
                "memory": c.attrs["HostConfig"]["Memory"], "flavour": _flavour(name, c)})
            for name, c in containers.items()})
        state_file.save(self.settings.state_path, stack)
        return {name: actions.get(name, "started") for name in SERVICES}

    async def _wait_probes(self, components: list[str]) -> None:
        """Past docker's own healthchecks, the lab's: through the proxy, as clients see the stack."""
        probes = {"proxy": lambda: health.proxy_ready(self.settings.proxy_api_port, ("postgres", "kafka")),
                  "postgres": lambda: health.postgres_ready(self.settings.pg_proxy_port,
                                                            password=self.settings.pg_password),
                  "kafka": lambda: health.kafka_ready(self.settings.kafka_proxy_port)}
        try:
            await asyncio.gather(*(health.wait_healthy(probes[c], self.settings.start_timeout_s)
                                   for c in components))
        except health.Refused as err:
            raise StackError(f"the compose stack is up but {err} (the pgdata volume keeps the password it was "
                             f"created with)") from None
        except health.Unhealthy as err:
            raise StartTimeout(f"the compose stack is up but not healthy within {self.settings.start_timeout_s:g}s: "
                               f"{err}\n{self.logs(components, 20)}") from None

    def down(self, purge: bool = False) -> list[str]:
        present = list(self._safe_containers())
        self._release()
        self._run(down_command(purge, self.settings.compose_project), 120)
        if purge:
            self._remove_volumes()
        state_file.clear(self.settings.state_path)
        return present

    @_translate("removing the data volumes of")
    def _remove_volumes(self) -> None:
        """The project's volumes (Postgres's data). `compose down --volumes` removes them only together with
        containers: with none left (a stack already down) it leaves them, and the data with its password."""
        project = f"com.docker.compose.project={self.settings.compose_project}"
        for volume in self._client().volumes.list(filters={"label": [project, LABEL]}):
            volume.remove()

    def _safe_containers(self) -> dict[str, Any]:
        try:
            return self._containers()
        except Exception:  # down must stay possible with an engine that misbehaves
            return {}

    @_translate("reading the compose stack's status")
    def status(self) -> dict[str, Any]:
        containers = self._containers()
        report = {}
        for name in SERVICES:
            container = containers.get(name)
            state = container.attrs["State"] if container else {}
            status = container.status if container else "absent"
            health_status = (state.get("Health") or {}).get("Status", "")
            report[name] = {"pid": state.get("Pid") or None, "container": container.short_id if container else None,
                            "running": status in ("running", "paused"), "paused": status == "paused",
                            "healthy": health_status == "healthy" and status == "running",
                            "health": f"{status}, {health_status}" if health_status else status,
                            "endpoint": self._endpoint(name)}
        return {"backend": self.name, "up": bool(containers), "components": report}

    def _endpoint(self, component: str) -> str:
        s = self.settings
        return {"proxy": s.proxy_url, "postgres": s.pg_proxy_address,
                "kafka": s.kafka_bootstrap}[component]

    def logs(self, names: list[str], lines: int) -> str:
        unknown = [n for n in names if n not in SERVICES]
        if unknown:
            raise StackError(f"no component {unknown[0]!r}: choose from {', '.join(SERVICES)}")
        services = [SERVICES[n] for n in names] if names else list(SERVICES.values())
        return self._run(compose_command("logs", "--no-color", "--tail", str(lines), *services,
                                         project=self.settings.compose_project), 60)

    # -- what faults do ----------------------------------------------------------------------------------

    @_translate("finding the main process of")
    def main_process(self, component: str) -> ProcessRecord:
        container = self._container(component)
        pid = container.attrs["State"].get("Pid") or 0
        if pid <= 0 or container.status not in ("running", "paused"):
            raise StackError(f"the {component} container is {container.status}, not running")
        return procs.record_of(pid)

    @_translate("pausing")
    def pause(self, component: str) -> None:
        container = self._container(component)
        if container.status != "paused":
            container.pause()  # the freezer cgroup: returns once every process is frozen

    @_translate("resuming")
    def resume(self, component: str) -> None:
        container = self._container(component)
        if container.status == "paused":
            container.unpause()

    @_translate("killing")
    def kill(self, component: str) -> None:
        container = self._container(component)
        if container.status in ("running", "paused"):
            container.kill()
        self._wait(component, lambda c: c.status not in ("running", "paused"), 10.0, "exit")

    @_translate("starting")
    def start(self, component: str) -> None:
        container = self._container(component)
        if container.status == "paused":
            container.unpause()
        elif container.status != "running":
            container.start()
        self._wait(component, lambda c: (c.attrs["State"].get("Health") or {}).get("Status") == "healthy",
                   self.settings.start_timeout_s, "become healthy")
        asyncio.run(self._wait_probes([component]))

    def _wait(self, component: str, done: Callable[[Any], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            container = self._container(component)
            if done(container):
                return
            if time.monotonic() > deadline:
                raise StartTimeout(f"the {component} container did not {what} within {timeout_s:g}s "
                                   f"(it is {container.status})\n{self.logs([component], 20)}")
            time.sleep(0.1)

    @_translate("resuming the paused containers of")
    def resume_paused(self) -> list[str]:
        resumed = []
        for name, container in self._containers().items():
            if container.status == "paused":
                container.unpause()
                resumed.append(name)
        return resumed

    @_translate("limiting the memory of")
    def set_memory_limit(self, component: str, limit_bytes: int, record: Callable[[dict[str, Any]], None]) -> None:
        container = self._container(component)
        host_config = container.attrs["HostConfig"]
        version, group = limits.cgroup_of(self.main_process(component).pid)
        undo = {"component": component, "container": container.id, "previous_bytes": host_config["Memory"],
                "previous_swap_bytes": host_config["MemorySwap"], "version": version, "cgroup": str(group),
                "oom_kills_before": limits.oom_kills(version, group)}
        record(undo)
        # memory and memory+swap move together: cgroup v1 refuses a memory limit above the swap limit
        container.update(mem_limit=limit_bytes, memswap_limit=limit_bytes)

    @_translate("restoring the memory limit of")
    def restore_memory_limit(self, undo: dict[str, Any]) -> None:
        container = self._container(undo["component"])
        if container.id != undo["container"]:
            return  # a new container: it never had the limit
        # docker cannot remove a limit once set: a container that had none gets the host's memory
        memory = undo["previous_bytes"] or limits.host_memory_bytes()
        swap = undo["previous_swap_bytes"] if undo["previous_swap_bytes"] not in (0, -1) else memory
        container.update(mem_limit=memory, memswap_limit=swap)

    def oom_kills(self, undo: dict[str, Any]) -> int:
        before = int(undo.get("oom_kills_before", 0))
        return limits.oom_kills(undo["version"], Path(undo["cgroup"])) - before

    @_translate("checking the containers of")
    def problems(self) -> list[str]:
        current = state_file.load(self.settings.state_path)
        recorded = current.components if current else {}
        containers = self._containers()
        found = []
        for name in SERVICES:
            container = containers.get(name)
            if container is None:
                found.append(f"{name} has no container")
            elif container.status == "paused":
                found.append(f"{name} is still paused")
            elif container.status != "running":
                found.append(f"{name} is {container.status}, not running")
            else:
                memory = container.attrs["HostConfig"]["Memory"]
                expected = recorded[name].info.get("memory", 0) if name in recorded else 0
                if memory not in (expected, limits.host_memory_bytes()):
                    found.append(f"{name} is still limited to {memory} bytes of memory")
        return found

    @_translate("reading the image labels of")
    def kafka_flavour(self) -> str:
        return self._flavour("kafka")

    @_translate("reading the image labels of")
    def proxy_flavour(self) -> str:
        return self._flavour("proxy")

    def resets_reach_clients(self) -> bool:
        # a published port is Docker's userland forwarder (docker-proxy; Docker Desktop's VM forwarder alike):
        # two connections of its own, and a reset on the container's side closes the client's with a FIN
        return False

    def _flavour(self, component: str) -> str:
        current = state_file.load(self.settings.state_path)
        if current is not None and component in current.components and "flavour" in current.components[component].info:
            return str(current.components[component].info["flavour"])
        return _flavour(component, self._container(component))


def _flavour(component: str, container: Any) -> str:
    """What runs in ``container``, from its image's labels: the official images carry none of ours."""
    labels = (container.attrs.get("Config") or {}).get("Labels") or {}
    if component == "kafka":
        return str(labels.get(FLAVOUR_LABEL, "apache"))
    if component == "proxy":
        return "lab.proxy" if labels.get(STAND_IN_LABEL) == "proxy" else "toxiproxy"
    return "official" if STAND_IN_LABEL not in labels else "stand-in"

