"""Base class for config sections: unknown keys are refused, values are validated on assignment."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A testbed.yaml section: strict about unknown keys."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
