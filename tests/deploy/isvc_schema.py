"""Check a rendered InferenceService field by field against the generated models of the pinned `kserve` package.

`kserve.models` (V1beta1InferenceService, V1beta1PredictorSpec, ...) and the `kubernetes` client's V1* models (for
the PodSpec/Container fields inside the components) carry `openapi_types` (python name -> type name) and
`attribute_map` (python name -> JSON key). Walking the object with them finds every unknown key (a typo the API
server would prune or reject) and every value of the wrong type, with its path. No CRD file is read: the models ship
with the package the transformer image pins, so this stays inside the repository.
"""

from __future__ import annotations

import re

import kserve.models
import kubernetes.client.models

_LIST = re.compile(r"^(?:list|List)\[(.+)\]$")
_DICT = re.compile(r"^(?:dict\(|Dict\[)\s*str\s*,\s*(.+?)\s*[\])]$")
# Scalars the generators emit by name; Kubernetes quantities and int-or-string fields arrive as `object` or a
# named alias, and YAML may give either an int or a string for them.
_SCALARS = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (str, int, float, bool, dict, list),
    "ResourceQuantity": (str, int, float),
    "datetime": (str,),
}


def _model(type_name: str):
    for module in (kserve.models, kubernetes.client.models):
        model = getattr(module, type_name, None)
        if model is not None and hasattr(model, "openapi_types"):
            return model
    raise LookupError(f"no generated model named {type_name}")


def problems(value, type_name: str, path: str = "") -> list[str]:
    """Every unknown field or wrongly typed value under `value`, read as `type_name`."""
    if (match := _LIST.match(type_name)) is not None:
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in problems(item, match.group(1), f"{path}[{i}]")]
    if (match := _DICT.match(type_name)) is not None:
        if not isinstance(value, dict):
            return [f"{path}: expected a map, got {type(value).__name__}"]
        return [p for key, item in value.items() for p in problems(item, match.group(1), f"{path}.{key}")]
    if type_name in _SCALARS:
        allowed = _SCALARS[type_name]
        # bool is an int in Python: an int field must not accept true/false, nor a bool field 1/0.
        if type(value) not in allowed and not (type_name == "object" and isinstance(value, allowed)):
            return [f"{path}: expected {type_name}, got {type(value).__name__} {value!r}"]
        return []
    model = _model(type_name)
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({type_name}), got {type(value).__name__}"]
    by_json_key = {json_key: attr for attr, json_key in model.attribute_map.items()}
    found = []
    for key, item in value.items():
        child = f"{path}.{key}" if path else key
        if key not in by_json_key:
            found.append(f"{child}: unknown field of {type_name}")
            continue
        if item is None:
            continue
        found += problems(item, model.openapi_types[by_json_key[key]], child)
    return found


def inference_service_problems(isvc: dict) -> list[str]:
    return problems(isvc, "V1beta1InferenceService")
