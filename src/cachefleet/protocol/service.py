"""The ElastiCache service model: the single source of wire names and shapes for the protocol layer.

``query.parse_request`` and ``xml.serialize_result`` walk the shapes found here; nothing else in
cachefleet spells a wire name by hand. The model is botocore's bundled ``service-2.json`` for API
version 2015-02-02, read once per process.
"""

from __future__ import annotations

import functools
from typing import Any, TypeAlias

import botocore.loaders
import botocore.model

from cachefleet.model.errors import InvalidAction

SERVICE_NAME = "elasticache"
API_VERSION = "2015-02-02"

# botocore ships no type stubs; these aliases name what the Any stands for.
OperationModel: TypeAlias = Any  # botocore.model.OperationModel
Shape: TypeAlias = Any  # botocore.model.Shape


class ServiceModel:
    """A typed face over ``botocore.model.ServiceModel``, exposing only what the protocol layer uses."""

    def __init__(self, botocore_model: Any) -> None:
        self._model = botocore_model
        self.api_version: str = botocore_model.api_version
        self.xml_namespace: str = botocore_model.metadata["xmlNamespace"]
        self.operation_names: frozenset[str] = frozenset(botocore_model.operation_names)

    def operation(self, name: str) -> OperationModel:
        # Check first: botocore's own error for an unknown name is not a wire error.
        if name not in self.operation_names:
            raise InvalidAction(f"The action {name} is not valid for this web service.")
        return self._model.operation_model(name)


@functools.cache
def load_service_model() -> ServiceModel:
    # Only botocore's bundled data: a stray ~/.aws/models must not change what the server speaks.
    loader = botocore.loaders.Loader(
        extra_search_paths=[botocore.loaders.Loader.BUILTIN_DATA_PATH],
        include_default_search_paths=False,
        include_default_extras=False,
    )
    description = loader.load_service_model(SERVICE_NAME, "service-2", api_version=API_VERSION)
    return ServiceModel(botocore.model.ServiceModel(description, service_name=SERVICE_NAME))
