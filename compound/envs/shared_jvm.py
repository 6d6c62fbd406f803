"""Simulator JVMs for the py4j-backed suites (TextWorldExpress, ScienceWorld), one shared per process.

Both packages start a JVM per Python wrapper object (~78 MB and ~0.8 s for
TextWorldExpress), which caps a worker at a few dozen concurrent episodes.
Their Java side, though, is a class (``PythonInterface``) whose *instances*
each hold one game: any number of them can live on one py4j gateway. So an
env instance takes a ``JVMLease`` here: its own interface object on the JVM
that every instance of the same ``JVMSpec`` in this process shares (started
on the first lease, stopped when the last one is released), or, with
``shared=False``, a JVM of its own as the packages do it. That the two give
the same observations and scores for the same seeds and actions, interleaved
or in threads, is checked per suite against the real simulators
(``tests/envs/test_shared_jvm.py``).

A JVM that dies (killed; out of memory, as ``EXIT_ON_OOM`` makes it) is noticed: calls on its interface
objects raise ``SimulatorLost``, a ``ConnectionError``, which
``compound.failures.classify`` counts as transient, so the episodes on it
are run again; the next lease starts a fresh JVM. Releasing one broken
instance frees only its interface object, never the JVM the others use.

Threads: py4j's ``GatewayClient`` hands each concurrent caller its own socket
from a pool (a deque; popping and appending are atomic), and the gateway
answers each socket on its own Java thread, so different instances may be
called from different threads. One instance must not be called from two
threads at once (an ``Env`` plays one episode at a time anyway). The agent
worker calls its environments from its event-loop thread only.
"""

from __future__ import annotations

import atexit
import functools
import threading
from dataclasses import dataclass
from typing import Any, Callable

from compound.envs.base import EnvError
from compound.envs.java import ensure_java, wait_for_jvm_exit


EXIT_ON_OOM = "-XX:+ExitOnOutOfMemoryError"
"""Java option for every simulator JVM: out of heap, it exits (its episodes rerun on a fresh one) instead of
answering each call of every instance on it with an ``OutOfMemoryError``."""


class SimulatorLost(EnvError, ConnectionError):
    """The simulator's JVM is gone; the episode on it can run again on a fresh one (transient)."""


@dataclass(frozen=True)
class JVMSpec:
    """What a simulator JVM runs: the jar, its working directory, Java options, and the interface class."""

    classpath: str
    cwd: str
    interface: str  # dotted Java class name, e.g. "textworldexpress.runtime.PythonInterface"
    javaopts: tuple[str, ...] = ()
    label: str = "simulator"


class _JVM:
    """One started JVM and the leases on it."""

    def __init__(self, spec: JVMSpec) -> None:
        from py4j.java_gateway import GatewayParameters, JavaGateway, launch_gateway

        ensure_java()
        self.spec = spec
        self.leases = 0
        self._stopped = False
        try:
            port, self.process = launch_gateway(
                classpath=spec.classpath, die_on_exit=True, cwd=spec.cwd, javaopts=list(spec.javaopts), return_proc=True
            )
        except Exception as exc:
            raise EnvError(f"could not start the {spec.label} JVM ({exc}); check `java -version` works") from exc
        try:
            self.gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auto_field=True), java_process=self.process)
            self._cls = _resolve(self.gateway.jvm, spec.interface)
        except BaseException:
            self.process.kill()
            wait_for_jvm_exit(self.process)
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def new_interface(self) -> Any:
        try:
            return self._cls()
        except Exception as exc:
            raise self.lost(exc) if not self.alive() else exc

    def lost(self, exc: BaseException) -> SimulatorLost:
        code = self.process.poll()
        return SimulatorLost(
            f"the {self.spec.label} JVM (pid {self.pid}) is gone (exit code {code}): {type(exc).__name__}; "
            "its episodes run again on a fresh one"
        )

    def stop(self) -> None:
        """Shut the gateway down and wait for the JVM to exit (killed if it hangs); safe on a dead JVM, once."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.gateway.shutdown()
            if self.alive():  # py4j#320: the JVM leaves only once its stdin sees a newline
                self.process.stdin.write(b"\n")
                self.process.stdin.flush()
        except Exception:  # a JVM that already died cannot be asked to stop
            pass
        wait_for_jvm_exit(self.process)


def _resolve(jvm: Any, dotted: str) -> Any:
    target = jvm
    for part in dotted.split("."):
        target = getattr(target, part)
    return target


class GuardedJavaObject:
    """A Java object whose method calls raise ``SimulatorLost`` once its JVM is gone (py4j raises its own errors).

    Methods only (what the packages' wrappers call on their interface); the
    member is looked up inside the guard because py4j's first lookup of a
    name asks the JVM whether it is a field.
    """

    def __init__(self, target: Any, jvm: _JVM) -> None:
        self._target, self._jvm = target, jvm

    def __getattr__(self, name: str) -> Callable[..., Any]:
        target, jvm = self._target, self._jvm

        def call(*args: Any) -> Any:
            from py4j.protocol import Py4JError, Py4JJavaError, Py4JNetworkError

            try:
                return getattr(target, name)(*args)
            except Py4JNetworkError as exc:
                raise jvm.lost(exc) from exc
            except Py4JError as exc:  # a Java exception on a live JVM is the simulator's answer
                if isinstance(exc, Py4JJavaError) or jvm.alive():
                    raise
                raise jvm.lost(exc) from exc

        return call


class JVMLease:
    """An env instance's hold on a JVM: its own interface object (``server``), given back by ``release()``."""

    def __init__(self, jvm: _JVM, shared: bool) -> None:
        self._jvm, self.shared = jvm, shared
        self._raw = jvm.new_interface()
        self.server = GuardedJavaObject(self._raw, jvm)
        self._gateway = jvm.gateway  # the packages' wrappers (and tests) look for ``_gateway.java_process``
        self.released = False

    @property
    def pid(self) -> int:
        return self._jvm.pid

    def alive(self) -> bool:
        return not self.released and self._jvm.alive()

    def release(self) -> None:
        """Free this instance's interface object; the JVM stops with its last lease (or at once when dead)."""
        if self.released:
            return
        self.released = True
        if self._jvm.alive():
            try:
                self._jvm.gateway.detach(self._raw)
            except Exception:  # it died meanwhile; stopping below reaps it
                pass
        _give_back(self._jvm)


def on_lease(wrapper_class: type, lease: JVMLease, **attributes: Any) -> Any:
    """A package's Python wrapper object (e.g. ``TextWorldExpressEnv``) driving ``lease.server``.

    The wrapper's own ``__init__`` would start a JVM, so it is skipped:
    ``attributes`` are the ones that ``__init__`` sets after starting it (the
    suite module names them; a test plays real games through the result), and
    ``close()`` gives the lease back instead of shutting a shared gateway down.
    """
    cls = _leased_subclass(wrapper_class)
    wrapper = cls.__new__(cls)
    wrapper.__dict__.update(attributes, _lease=lease, _gateway=lease._gateway, server=lease.server)
    return wrapper


@functools.cache
def _leased_subclass(wrapper_class: type) -> type:
    def close(self: Any) -> None:
        self._lease.release()

    def __del__(self: Any) -> None:
        try:
            self._lease.release()
        except Exception:
            pass

    return type(f"Leased{wrapper_class.__name__}", (wrapper_class,), {"close": close, "__del__": __del__})


_LOCK = threading.Lock()
_SHARED: dict[JVMSpec, _JVM] = {}
_RESTARTS: dict[JVMSpec, int] = {}


def lease(spec: JVMSpec, *, shared: bool = True) -> JVMLease:
    """A new interface object on the process's JVM for ``spec`` (started, or restarted if it died), or on a JVM of its own."""
    if not shared:
        jvm = _JVM(spec)
        jvm.leases = 1
        try:
            return JVMLease(jvm, shared=False)
        except BaseException:
            jvm.stop()
            raise
    with _LOCK:
        jvm = _SHARED.get(spec)
        if jvm is not None and not jvm.alive():
            _SHARED.pop(spec)  # its leases fail as SimulatorLost and reap it when released
            _RESTARTS[spec] = _RESTARTS.get(spec, 0) + 1
            jvm = None
        if jvm is None:
            jvm = _SHARED[spec] = _JVM(spec)
        jvm.leases += 1
    try:
        return JVMLease(jvm, shared=True)
    except BaseException:
        _give_back(jvm)
        raise


def _give_back(jvm: _JVM) -> None:
    with _LOCK:
        jvm.leases -= 1
        last = jvm.leases <= 0
        if last and _SHARED.get(jvm.spec) is jvm:
            _SHARED.pop(jvm.spec)
    if last or not jvm.alive():
        jvm.stop()


def shared_jvms() -> list[dict[str, Any]]:
    """The process's shared JVMs: label, pid, leases, restarts so far (benchmarks, health)."""
    with _LOCK:
        return [
            {"label": s.label, "pid": j.pid, "leases": j.leases, "restarts": _RESTARTS.get(s, 0)}
            for s, j in _SHARED.items()
        ]


@atexit.register
def _stop_all() -> None:
    """Stop shared JVMs still running at exit while py4j's threads still run."""
    with _LOCK:
        jvms = list(_SHARED.values())
        _SHARED.clear()
    for jvm in jvms:
        jvm.stop()


class LeasedSimulatorEnv:
    """The lifecycle of an environment whose simulator object holds a lease on a shared JVM.

    Subclasses keep that object in ``self._game`` (None once closed) and the
    episode in progress in ``self._episode``; ``alive`` is False once closed
    or once the JVM died (a pool then makes a new instance instead of
    lending this one), and ``close`` gives the object back: its JVM stops
    (waited for) once no instance uses it.
    """

    _game: Any = None
    _episode: Any = None

    @property
    def alive(self) -> bool:
        return self._game is not None and self._game._lease.alive()

    def close(self) -> None:
        game, self._game = self._game, None
        self._episode = None
        if game is not None:
            game.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
