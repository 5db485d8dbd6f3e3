"""Registry names of ARCHITECTURE.md → ingest adapters.

Each adapter is ``ingest(root, dataset=NAME, *, workers=..., progress=..., **options) -> IngestResult``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

import yaml

from tasks.ingest import (
    add_challenge,
    asvspoof5,
    asvspoof2019,
    asvspoof2021,
    codecfake,
    dfadd,
    diffssd,
    fake_or_real,
    hf,
    in_the_wild,
    inbox,
    librisevoc,
    mlaad,
    odss,
    protocol_csv,
    sonar,
    spoofceleb,
    timit_tts,
)
from tasks.ingest.common import IngestResult, OptionError
from tasks.ingest.label_policy import RESYNTHESIS_CHOICES

Adapter = Callable[..., IngestResult]

ADAPTERS: dict[str, Adapter] = {
    "asvspoof2019_la": asvspoof2019.ingest,
    "asvspoof2021_la": asvspoof2021.ingest_la,
    "asvspoof2021_df": asvspoof2021.ingest_df,
    "asvspoof5": asvspoof5.ingest,
    "in_the_wild": in_the_wild.ingest,
    "fake_or_real": fake_or_real.ingest,
    "mlaad": mlaad.ingest,
    "timit_tts": timit_tts.ingest,
    "odss": odss.ingest,
    "spoofceleb": spoofceleb.ingest,
    "codecfake": codecfake.ingest,
    "add2022": add_challenge.ingest_2022,
    "add2023": add_challenge.ingest_2023,
    "dfadd": dfadd.ingest,
    "librisevoc": librisevoc.ingest,
    "sonar": sonar.ingest,
    "diffssd": diffssd.ingest,
    "protocol_csv": protocol_csv.ingest,
    "hf": hf.ingest,
    "inbox": inbox.ingest,
}


# Options whose values come from a fixed set, per adapter: checked when the options are read
# (config load, `addgp ingest --option`), so `splits=eval,bogus` is refused by name before
# any file is read. Options whose values depend on the corpus on disk (TIMIT-TTS subset
# folders, ASVspoof 2021 key subsets) are checked by their adapters against what they find.
OPTION_CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "asvspoof2019_la": {"splits": tuple(asvspoof2019.PROTOCOLS)},
    "asvspoof5": {"splits": tuple(asvspoof5.PROTOCOLS), "resynthesised": RESYNTHESIS_CHOICES},
    "fake_or_real": {"version": (*fake_or_real.VERSIONS, *fake_or_real.VERSION_ALIASES)},
    "mlaad": {"bonafide": mlaad.BONAFIDE_CHOICES},
    "hf": {"audio_format": hf.AUDIO_FORMATS},
    "spoofceleb": {"splits": tuple(spoofceleb.SPLITS.values())},
    "codecfake": {"resynthesised": RESYNTHESIS_CHOICES},
    "librisevoc": {"resynthesised": RESYNTHESIS_CHOICES},
}


def get_adapter(name: str) -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown dataset adapter {name!r}; known: {', '.join(sorted(ADAPTERS))}") from None


def adapter_options(name: str) -> dict[str, object]:
    """The options an adapter accepts (keyword → default), for help texts and error messages."""
    params = inspect.signature(get_adapter(name)).parameters
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in list(params.values())[2:]
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def coerce_option(adapter: str, param: inspect.Parameter, value):
    """An option given as text (``addgp ingest --option KEY=VALUE``) → the type the adapter takes.

    Non-text values (from YAML configs) pass unchanged. By the parameter's annotation and
    default: booleans from true/false/yes/no/on/off/1/0; ints; dicts from YAML/JSON
    (``{0: bonafide, 1: spoof}``); lists from YAML/JSON (``[a, b]``) or comma-separated text
    (``a,b``) — unless the option also takes a plain string and the text has no comma or
    bracket (``subsets=CLEAN``, ``keep_columns=all``); ``null``/``none`` → None where None is
    allowed. Anything else stays text.
    """
    if not isinstance(value, str):
        return value
    annotation = str(param.annotation)
    default = param.default
    text = value.strip()
    where = f"adapter {adapter!r}, option {param.name}"
    if "None" in annotation and text.lower() in ("null", "none"):
        return None
    if isinstance(default, bool) or annotation.replace(" ", "") in ("bool", "bool|None"):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise OptionError(f"{where}: expected true or false, got {value!r}")
    if (isinstance(default, int) and not isinstance(default, bool)) or annotation.replace(" ", "") in (
        "int",
        "int|None",
    ):
        try:
            return int(text)
        except ValueError:
            raise OptionError(f"{where}: expected an integer, got {value!r}") from None
    if annotation.startswith("dict") or "| dict" in annotation:
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise OptionError(
                f"{where}: expected a mapping such as {{0: bonafide, 1: spoof}}, got {value!r} ({exc})"
            ) from None
        if not isinstance(parsed, dict):
            raise OptionError(f"{where}: expected a mapping such as {{0: bonafide, 1: spoof}}, got {value!r}")
        return parsed
    if "list" in annotation or "tuple" in annotation or isinstance(default, (list, tuple)):
        takes_text = annotation.startswith("str") or "| str" in annotation
        if text.startswith("["):
            try:
                parsed = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise OptionError(f"{where}: expected a list such as [a, b], got {value!r} ({exc})") from None
            if not isinstance(parsed, list):
                raise OptionError(f"{where}: expected a list such as [a, b], got {value!r}")
            return [str(v) for v in parsed]
        if takes_text and "," not in text:
            return value
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def check_choices(adapter: str, name: str, value) -> None:
    """OptionError naming the value, option, adapter and allowed values unless every value of
    ``value`` (a text or a list of texts, already coerced) is one ``adapter`` accepts for ``name``."""
    allowed = OPTION_CHOICES.get(adapter, {}).get(name)
    if allowed is None or value is None:
        return
    values = [value] if isinstance(value, str) else list(value)
    bad = [v for v in values if v not in allowed]
    if bad:
        shown = ", ".join(repr(v) for v in bad)
        raise OptionError(
            f"adapter {adapter!r}, option {name}: {shown} not allowed; allowed values: {', '.join(allowed)}"
        )


def check_options(adapter: str, options: dict) -> None:
    """Raise (KeyError, OptionError) unless ``adapter`` exists and takes every option in ``options``
    with a usable value: the check a config gets when it loads, before anything runs."""
    function = get_adapter(adapter)
    params = inspect.signature(function).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(options) - set(adapter_options(adapter)))
    if unknown:
        known = ", ".join(sorted(adapter_options(adapter)))
        raise OptionError(f"adapter {adapter!r} has no option(s) {unknown}; its options are: {known}")
    for key, value in options.items():
        check_choices(adapter, key, coerce_option(adapter, params[key], value))


def ingest_dataset(adapter: str, root: str | os.PathLike, dataset: str | None = None, **options) -> IngestResult:
    """Run the adapter registered as ``adapter`` on ROOT; ``dataset`` names the rows (default: the adapter name).

    Options given as text are converted to the adapter's types (``coerce_option``). An
    option the adapter does not know is an OptionError (a TypeError and a ValueError)
    listing the ones it does.
    """
    function = get_adapter(adapter)
    params = inspect.signature(function).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            known = ", ".join(sorted(adapter_options(adapter)))
            raise OptionError(f"adapter {adapter!r} has no option(s) {unknown}; its options are: {known}")
    options = {k: coerce_option(adapter, params[k], v) if k in params else v for k, v in options.items()}
    for key, value in options.items():
        check_choices(adapter, key, value)
    return function(root, dataset=dataset or adapter, **options)
