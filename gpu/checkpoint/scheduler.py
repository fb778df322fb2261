"""The scheduler an SVDQ file records it was made with (its metadata's ``scheduler``: ``{"class": name, "config":
{...}}``), checked and made: one check for ``inspect``, the library's add and loading alike, so a file that loading
would refuse is refused by all three.

The record is text from the file: its class is taken only from the schedulers the model's pipeline can drive
(``ModelAdapter.schedulers``: FLUX's pipelines pass ``set_timesteps`` sigmas and a shift ``mu``, which only the
flow-match schedulers take), looked up by name, nothing imported or evaluated from the text; of its config only
the settings the class takes are kept, each of the type the class's default has; and the scheduler made of it is
run through a short schedule as the pipeline runs it, so a config that would fail mid-image (a text where a number
goes, a schedule too long for memory) is refused naming the file."""

from __future__ import annotations

import inspect
import json
import logging
import re
import typing
from typing import Any

from gpu.checkpoint.format import NEWER_APP, REMAKE, CheckpointMeta, check_fields
from gpu.errors import SchedulerError

log = logging.getLogger(__name__)

# Settings whose size the scheduler allocates: bounded, as an edited 10**11 timesteps asked for 745 GiB at load
_BOUNDS = {"num_train_timesteps": (1, 100_000)}
# A JSON value's type per type of a setting's default (int and float both read a whole number as a number)
_TYPES: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"), int: ((int,), "a whole number"), float: ((int, float), "a number"),
    str: ((str,), "a text"), list: ((list,), "a list"), tuple: ((list,), "a list"),
}  # fmt: skip
_SCALAR = ((bool, int, float, str), "a number, a text, true or false")


def scheduler_class(name: object) -> type | None:
    """The diffusers scheduler class named ``name`` (e.g. "FlowMatchEulerDiscreteScheduler"), looked up by name among
    the classes ``diffusers.schedulers`` exports, nothing imported or evaluated from the text itself; None for any
    other name (one that is no scheduler, or one whose optional dependency is not installed)."""
    if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
        return None
    import diffusers.schedulers
    from diffusers import SchedulerMixin

    try:
        found = getattr(diffusers.schedulers, name)
    except (AttributeError, ImportError, RuntimeError):  # not exported; a listed one whose module fails to import
        return None
    # an optional dependency's missing class is a placeholder of another type (DummyObject)
    return found if isinstance(found, type) and issubclass(found, SchedulerMixin) and found is not SchedulerMixin \
        else None  # fmt: skip


def _parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The settings the scheduler class ``cls`` takes (its ``__init__``'s named parameters): what its config means."""
    return {n: p for n, p in inspect.signature(cls.__init__).parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}  # fmt: skip


def _taken(cls: type, config: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``config`` the scheduler class ``cls`` takes (diffusers keeps the others in ``.config``, and
    says so in a warning), a true-or-false one given as the whole number 1 or 0 made true or false: JSON writers
    other than Python's, and hand edits, write them so. Any other value is kept as it is (``_field_types`` checks
    it)."""
    taken = _parameters(cls)
    return {k: bool(v) if type(taken[k].default) is bool and type(v) is int and v in (0, 1) else v
            for k, v in config.items() if k in taken}  # fmt: skip


def settings(scheduler: Any) -> dict[str, Any]:
    """The settings of ``scheduler`` its class takes, as plain JSON values: not the private keys, nor the unknown
    ones diffusers keeps in ``.config`` all the same (a newer diffusers' key, a typo) that change nothing."""
    from gpu.quantizer.shared import plain_config  # the quantizer's package imports the loader, which imports this

    return _taken(type(scheduler), plain_config(scheduler.config))


def scheduler_differences(own: Any, base: Any) -> list[str]:
    """What differs between the schedulers ``own`` (the model's) and ``base`` (its base pipeline's), as "<setting>
    <own> vs <base>" phrases: the class alone where it differs, else each setting their class takes that differs
    (``settings``: a key diffusers keeps but the class ignores changes nothing); empty where they are the same."""
    if type(own) is not type(base):
        return [f"class {type(own).__name__} vs {type(base).__name__}"]
    mine, theirs = settings(own), settings(base)
    return [f"{key} {json.dumps(mine.get(key))} vs {json.dumps(theirs.get(key))}"
            for key in sorted(mine.keys() | theirs.keys()) if mine.get(key) != theirs.get(key)]  # fmt: skip


def _field_types(cls: type) -> dict[str, tuple[tuple[type, ...], str]]:
    """``check_fields``' types of each setting of ``cls``: its default's (null too where its annotation allows
    None); any JSON scalar or null where the default is None, which the dry run (``_run_short_schedule``) tries."""
    fields = {}
    for name, p in _parameters(cls).items():
        if p.default is None or p.default is p.empty:
            fields[name] = ((*_SCALAR[0], type(None)), _SCALAR[1] + " or null")
        elif type(p.default) in _TYPES:
            types, words = _TYPES[type(p.default)]
            nullable = type(None) in typing.get_args(p.annotation)
            fields[name] = ((*types, type(None)), words + " or null") if nullable else (types, words)
    return fields


def _run_short_schedule(scheduler: Any) -> None:
    """Sets ``scheduler`` up as FLUX's pipelines do for a 2-step image of 256 tokens (sigmas from 1, the shift ``mu``
    from its config by the pipeline's own formula) and takes one step; raises what that raises, and ValueError for
    a schedule of numbers that are not finite."""
    import torch

    from gpu.model_libraries import load_model_libraries

    # quieted and imported as generate and quantize do, under their lock: importing FLUX's pipeline module printed
    # transformers' advice to install torchvision on stderr (``inspect`` checks the schedule first), and the
    # library's add runs this on the wizard's thread while the engine's may be importing the same names
    load_model_libraries()
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    config = scheduler.config
    mu = calculate_shift(256, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                         config.get("base_shift", 0.5), config.get("max_shift", 1.15))  # fmt: skip
    timesteps, _ = retrieve_timesteps(scheduler, 2, "cpu", sigmas=[1.0, 0.5], mu=mu)
    if not (torch.isfinite(torch.as_tensor(timesteps)).all() and torch.isfinite(scheduler.sigmas).all()):
        raise ValueError("its schedule is not finite numbers")
    latents = torch.zeros(1, 1, 4)
    scheduler.step(latents, timesteps[0], latents, return_dict=False)


def checked_scheduler(name: str, architecture: str, record: dict[str, Any], subject: str = "") -> Any:
    """The scheduler the SVDQ file ``name`` of an ``architecture`` model records (its metadata's ``scheduler``,
    whose form ``gpu.checkpoint.format`` checked), made from its config; None where the file records none (made
    before it was recorded). SchedulerError (a CheckpointError) for a class the model's pipeline cannot drive, a
    setting of the wrong type or out of bounds, a config the class refuses or whose schedule fails, or a package the
    class needs for it that is not installed; its message starts with ``subject`` (by default the file's name and
    "the scheduler its SVDQ metadata records"). Settings the class does not take are left out (logged)."""
    from gpu.adapters import adapter_named

    subject = subject or f"{name}: the scheduler its SVDQ metadata records"
    if not record:
        return None
    allowed = adapter_named(architecture).schedulers
    cls = scheduler_class(record["class"]) if record["class"] in allowed else None
    if cls is None:  # a scheduler a newer version runs such models with, or a hand edit
        raise SchedulerError(f"{subject}, {str(record['class'])[:60]!r}, is "
                              f"not one this app can run the model with (it takes {' or '.join(allowed)})",
                              hint=NEWER_APP)  # fmt: skip
    config = _taken(cls, record["config"])
    if ignored := sorted(record["config"].keys() - config.keys()):
        log.info("%s: settings of its recorded scheduler that %s does not take, left out: %s", name, cls.__name__,
                 ", ".join(ignored))  # fmt: skip
    try:
        check_fields(config, _field_types(cls))
        for key, (low, high) in _BOUNDS.items():
            if key in config and not low <= config[key] <= high:
                raise ValueError(f"{key} is {json.dumps(config[key])[:40]}, not from {low} to {high}")
        _run_short_schedule(cls.from_config(config))
        return cls.from_config(config)  # a fresh one: the pipeline sets its schedule up per image
    except ImportError as err:  # a setting whose optional package is not installed (beta sigmas: scipy)
        raise missing_package(subject, err) from None
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, ArithmeticError, RuntimeError) as err:
        said = str(err) if isinstance(err, ValueError) and str(err) else f"{type(err).__name__}: {err}"
        raise SchedulerError(f"{subject} is invalid ({cls.__name__} config: "
                             f"{said[:200]})", hint=REMAKE) from None  # fmt: skip


def missing_package(what: str, err: ImportError) -> SchedulerError:
    """The refusal of a scheduler (``what``: the words naming it, e.g. "f.safetensors: the scheduler its SVDQ metadata
    records") whose making raised ``err`` for a package not installed, naming the package: the module's name, or
    the one diffusers' text says to install ("Make sure to install scipy ...")."""
    said = re.search(r"install (\w[\w.-]*)", str(err))
    package = err.name or (said.group(1) if said else "") or "a package"
    return SchedulerError(f"{what} needs the Python package {package}, which is not installed",
                          hint=f"install {package}, or re-quantize the model with a base pipeline whose scheduler "
                               "does not need it")  # fmt: skip


def scheduler_words(meta: CheckpointMeta) -> str:
    """The scheduler an SVDQ file records, in words for ``inspect``: its class and the settings that differ from
    the class's defaults, or that it records none. ``meta``: checked (``checked_scheduler``)."""
    if not meta.scheduler:
        return "not recorded: it runs with its base pipeline's scheduler"
    cls = scheduler_class(meta.scheduler["class"])  # found: ``checked_scheduler`` refused a class it cannot find
    assert cls is not None
    own, defaults = settings(cls.from_config(_taken(cls, meta.scheduler["config"]))), settings(cls())
    differs = [f"{k} {json.dumps(v)}" for k, v in sorted(own.items()) if v != defaults.get(k)]
    return f"{cls.__name__} ({', '.join(differs) or 'its defaults'})"
