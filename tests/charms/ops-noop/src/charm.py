#!/usr/bin/env python3
"""The Python twin of Ward's Rust noop charm: active on every event (collect-status)."""

import ops


class Noop(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.collect_unit_status, self._on_collect)

    def _on_collect(self, event: ops.CollectStatusEvent):
        event.add_status(ops.ActiveStatus())


if __name__ == "__main__":
    ops.main(Noop)
