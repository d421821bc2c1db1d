#!/usr/bin/env python3
"""An unmodified-style ops charm: reads the greeter's app data and granted secret,
answers in its own unit bag, and shares a secret of its own back."""

import logging

import ops

logger = logging.getLogger(__name__)


class OpsListener(ops.CharmBase):
    def __init__(self, framework):
        super().__init__(framework)
        framework.observe(self.on.install, self._on_install)
        framework.observe(self.on["greetings"].relation_changed, self._on_changed)
        framework.observe(self.on.collect_unit_status, self._on_collect)

    def _on_install(self, _):
        self.unit.status = ops.WaitingStatus("waiting for a greeter")

    def _on_changed(self, event: ops.RelationChangedEvent):
        data = event.relation.data[event.app]
        greeting = data.get("greeting")
        secret_id = data.get("token-secret")
        if not greeting or not secret_id:
            logger.info("greeter has not published yet (app bag keys: %s)", sorted(data.keys()))
            return
        token = self.model.get_secret(id=secret_id).get_content()["token"]
        mine = event.relation.data[self.unit]
        mine["heard"] = greeting
        mine["token-length"] = str(len(token))
        mine["ops-version"] = ops.__version__

    def _on_collect(self, event: ops.CollectStatusEvent):
        rel = self.model.get_relation("greetings")
        if rel and rel.data[self.unit].get("heard"):
            event.add_status(ops.ActiveStatus(f"heard: {rel.data[self.unit]['heard']}"))
        else:
            event.add_status(ops.WaitingStatus("waiting for a greeter"))


if __name__ == "__main__":
    ops.main(OpsListener)
