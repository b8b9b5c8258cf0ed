"""The ``usage`` part of the team policy: which capabilities the platform's tools report uses of,
who the developer audience is, and the moment-of-use CSAT question per capability.

```yaml
usage:
  audience: {usergroups: [S0DEVS]}         # the share of the audience that used a capability
  csat: {cap_days: 14, quiet_hours: "19:00-09:00", min_group: 5}
  capabilities:
    - name: deploy
      area: deploys                          # a taxonomy category: its friction points sit beside it
      csat: {enabled: true, sample_every: 10}
```
"""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.slack_ids import ChannelId, UserGroupId

CapabilityName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
HourRange = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapabilityCsat(_Strict):
    enabled: bool = False
    sample_every: Annotated[int, Field(ge=1, le=1000)] = 10  # one use in this many is followed by the question
    question: Annotated[str, Field(min_length=1, max_length=200)] | None = None  # default: "How was <label> just now?"


class Capability(_Strict):
    name: CapabilityName  # what events name in "capability"
    label: Annotated[str, Field(min_length=1, max_length=75)] | None = None  # shown to people; default: the name
    area: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")] | None = None  # a taxonomy category id
    csat: CapabilityCsat = CapabilityCsat()

    @property
    def display(self) -> str:
        return self.label or self.name


class UsageAudience(_Strict):
    """The developer audience: the union of these user groups' and channels' members."""

    usergroups: list[UserGroupId] = []
    channels: list[ChannelId] = []


class CsatRules(_Strict):
    """What every capability's moment-of-use question obeys."""

    cap_days: Annotated[int, Field(ge=1, le=365)] = 14  # at most one such DM per person per this many days, all capabilities
    quiet_hours: HourRange | None = "19:00-09:00"  # local time of the person (users.info tz); a DM due inside waits
    min_group: Annotated[int, Field(ge=3, le=1000)] = 5  # a week's score is shown only from this many answers
    answer_days: Annotated[int, Field(ge=1, le=30)] = 7  # answers to a week's questions are taken until this long after it


class UsagePolicy(_Strict):
    capabilities: Annotated[list[Capability], Field(max_length=100)] = []
    audience: UsageAudience = UsageAudience()
    csat: CsatRules = CsatRules()

    @model_validator(mode="after")
    def _unique(self) -> "UsagePolicy":
        names = [c.name for c in self.capabilities]
        if len(names) != len(set(names)):
            raise ValueError("usage.capabilities: names must be unique")
        return self

    def capability(self, name: str) -> Capability | None:
        return next((c for c in self.capabilities if c.name == name), None)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.capabilities]


def check_areas(usage: UsagePolicy, taxonomy) -> None:
    """ValueError naming a capability whose ``area`` is not a taxonomy category (the root policy's check)."""
    for c in usage.capabilities:
        if c.area is not None and not taxonomy.has(c.area):
            raise ValueError(f"usage.capabilities[{c.name}].area {c.area!r} is not a taxonomy category id "
                             f"(one of: {', '.join(x.id for x in taxonomy.categories)})")
