"""The botocore service models: the single source of wire names and shapes for the protocol layer.

``query.parse_request`` and ``xml.serialize_result`` walk the shapes found here; nothing else in
cachefleet spells a wire name by hand. A model is botocore's bundled ``service-2.json``, read once
per process and looked up by the service name a request was signed for (the SigV4 credential
scope's service): ``elasticache`` today, other AWS Query services on the same ``POST /`` later.
"""

from __future__ import annotations

import functools
from typing import Any, TypeAlias

import botocore.loaders
import botocore.model

from cachefleet.model.errors import InvalidAction

SERVICE_NAME = "elasticache"
API_VERSION = "2015-02-02"

_MAX_NAME = 64  # characters of an unknown action quoted back

# botocore ships no type stubs; these aliases name what the Any stands for.
OperationModel: TypeAlias = Any  # botocore.model.OperationModel
Shape: TypeAlias = Any  # botocore.model.Shape


class ServiceModel:
    """A typed face over ``botocore.model.ServiceModel``, exposing only what the protocol layer uses."""

    def __init__(self, botocore_model: Any) -> None:
        self._model = botocore_model
        self.service_name: str = botocore_model.service_name
        self.api_version: str = botocore_model.api_version
        self.xml_namespace: str = botocore_model.metadata["xmlNamespace"]
        self.operation_names: frozenset[str] = frozenset(botocore_model.operation_names)

    def operation(self, name: str) -> OperationModel:
        # Check first: botocore's own error for an unknown name is not a wire error.
        if name not in self.operation_names:
            shown = name if len(name) <= _MAX_NAME else name[:_MAX_NAME] + "..."
            raise InvalidAction(f"The action {shown} is not valid for this web service.")
        return self._model.operation_model(name)


@functools.cache
def load_service_model(service_name: str = SERVICE_NAME, api_version: str | None = None) -> ServiceModel:
    """The bundled model of ``service_name`` (its newest API version unless one is named)."""
    # Only botocore's bundled data: a stray ~/.aws/models must not change what the server speaks.
    loader = botocore.loaders.Loader(
        extra_search_paths=[botocore.loaders.Loader.BUILTIN_DATA_PATH],
        include_default_search_paths=False,
        include_default_extras=False,
    )
    if service_name == SERVICE_NAME and api_version is None:
        api_version = API_VERSION
    description = loader.load_service_model(service_name, "service-2", api_version=api_version)
    return ServiceModel(botocore.model.ServiceModel(description, service_name=service_name))
