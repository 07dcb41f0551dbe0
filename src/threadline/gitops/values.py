"""The scalar value types of the ModelDeployment spec: durations, Kubernetes quantities, labels, names.

Each is an ``Annotated`` type that parses and checks one value and says what a good one looks
like, so ``spec.py`` reads as the shape of a document. They raise ``ValueError`` (which
pydantic reports with the field path), and carry their own JSON Schema, because what YAML
holds (``"60s"``, ``2Gi``) is not what Python holds (seconds, a checked string).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from threadline.domain import errors, names

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CPU = re.compile(r"^(?:\d+m|\d+(?:\.\d+)?)$")
_MEMORY = re.compile(r"^\d+(?:\.\d+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def parse_duration(value: object) -> float:
    """``"500ms"``, ``"60s"``, ``"5m"``, ``"1h"``, ``"7d"`` -> seconds; anything else is refused."""
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"invalid duration {value!r}: use a number and a unit (ms, s, m, h or d), "
                         "like 500ms, 60s, 5m, 1h or 7d")
    return float(match[1]) * _SECONDS_PER_UNIT[match[2]]


def format_duration(seconds: float) -> str:
    """Seconds -> a duration that ``parse_duration`` reads back, so a dumped spec validates again."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


def _quantity_text(value: object) -> object:
    # YAML reads ``cpu: 1`` and ``cpu: 0.5`` as numbers; Kubernetes quantities are strings.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def _positive(quantity: str) -> bool:
    return float(re.sub(r"[^\d.]", "", quantity)) > 0


def _cpu(value: object) -> str:
    text = _quantity_text(value)
    if not isinstance(text, str) or not _CPU.match(text) or not _positive(text):
        raise ValueError(f"invalid cpu {value!r}: use cores like \"1\" or \"0.5\", or millicores like "
                         "\"500m\" (more than zero)")
    return text


def _memory(value: object) -> str:
    text = _quantity_text(value)
    if isinstance(text, str) and text.endswith("m") and text[:-1].isdigit():
        raise ValueError(f"invalid memory {value!r}: 'm' means thousandths of a byte; "
                         f"did you mean {text[:-1]}Mi?")
    if not isinstance(text, str) or not _MEMORY.match(text) or not _positive(text):
        raise ValueError(f"invalid memory {value!r}: use a Kubernetes quantity like 512Mi, 2Gi or 1G "
                         "(more than zero)")
    return text


_MEMORY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
                 "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def cpu_cores(quantity: str) -> float:
    """A validated cpu quantity (``"250m"``, ``"2"``) in cores."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def memory_bytes(quantity: str) -> int:
    """A validated memory quantity (``"512Mi"``, ``"1G"``) in bytes."""
    number = re.match(r"^\d+(?:\.\d+)?", quantity)
    assert number is not None
    return int(float(number[0]) * _MEMORY_UNITS[quantity[number.end():]])


def _label_key(key: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if (len(name) > 63 or not _LABEL_NAME.match(name)
            or (slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))):
        raise ValueError(f"invalid key {key!r}: use an optional DNS prefix and '/', then up to 63 letters, "
                         "digits, '-', '_' or '.', starting and ending with a letter or digit")
    return key


def _label_value(value: str) -> str:
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        raise ValueError(f"invalid value {value!r}: use up to 63 letters, digits, '-', '_' or '.', "
                         "starting and ending with a letter or digit")
    return value


def _webhook(url: str) -> str:
    # The URL is never echoed back: it might carry a secret.
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or not (parts.scheme == "https"
                                  or (parts.scheme == "http" and parts.hostname in _LOOPBACK)):
        raise ValueError("webhook must be an https:// URL (http:// only to localhost)")
    if parts.username or parts.password:
        raise ValueError("webhook must not carry credentials in the URL: the call is signed instead")
    return url


def _name_rule(check: Callable[..., str], noun: str | None = None) -> AfterValidator:
    def validate(value: str) -> str:
        try:
            return check(value, field="")
        except errors.InvalidInput as exc:
            # names.py words the DNS-label rule for models; deployments and queues share the rule.
            raise ValueError(str(exc).replace("model name", noun) if noun else str(exc)) from None
    return AfterValidator(validate)


Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str),
                     WithJsonSchema({"type": "string", "pattern": _DURATION.pattern,
                                     "examples": ["500ms", "60s", "5m", "1h", "7d"]})]
Cpu = Annotated[str, BeforeValidator(_cpu), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": _CPU.pattern}, {"type": "number", "exclusiveMinimum": 0}]})]
Memory = Annotated[str, BeforeValidator(_memory), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": _MEMORY.pattern}, {"type": "integer", "exclusiveMinimum": 0}]})]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Labels = dict[LabelKey, LabelValue]
Webhook = Annotated[str, AfterValidator(_webhook), WithJsonSchema({"type": "string", "format": "uri"})]
Rate = Annotated[float, Field(ge=0, le=1)]
DeploymentName = Annotated[str, _name_rule(names.model_name, "deployment name")]
QueueName = Annotated[str, _name_rule(names.model_name, "queue name")]
ModelName = Annotated[str, _name_rule(names.model_name)]
EnvironmentName = Annotated[str, _name_rule(names.environment_name)]
TeamName = Annotated[str, _name_rule(names.team_name)]
AliasName = Annotated[str, _name_rule(names.alias_name)]
