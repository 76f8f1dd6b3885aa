"""A short seeded fault campaign (scripts/chaos.py) on the session's real stack."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType

from devstack import LocalStack
from devstack.proxy import FaultProxy

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "chaos.py"


def _chaos() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chaos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["chaos"] = module
    spec.loader.exec_module(module)
    return module


def test_a_short_campaign_finds_no_violation(clean_stack: LocalStack) -> None:
    """Three fault rounds and three hostile sheets (seed 7): every invariant holds."""
    chaos = _chaos()
    with FaultProxy(clean_stack.postgrest_url) as proxy:
        campaign = chaos.Campaign(clean_stack, proxy, random.Random(7))
        for i in range(3):
            campaign.fault_round(i)
        for i in range(3):
            campaign.hostile_round(i)
        proxy.release()
    assert [] == campaign.violations
    assert 6 <= sum(campaign.exits.values())
