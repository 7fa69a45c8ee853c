"""Base class for config sections: unknown keys are refused, values are validated on assignment, numbers are finite."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A testbed.yaml section: strict about unknown keys; NaN and infinity are refused in every number."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
