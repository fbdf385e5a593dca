"""Consumable resources in the item store, and the units a job's write moves (docs/adr/0026).

- resource: pk "CR", sk "<name>"; body the ConsumableResource without its version.
- consumer: pk "CRJ#<name>", sk "<createdAt>#<jobId>": one per submitted job that names the resource, written with
  the job (ListJobsByConsumableResource reads the partition, then the jobs). Written once, never updated, so it
  expires like a dependency edge, long after its job usually has.

`unit_moves(before, after)` are the Puts a job's own conditional write carries when it takes or returns units
(store/jobs.py `JobRepository.save`): each on the resource's version, so two claims racing for the same units
cannot both commit (on DynamoDB, one TransactWriteItems with the job's put; on SQLite, one transaction).
"""

from __future__ import annotations

import dataclasses

from chalicelib.domain import consumables
from chalicelib.domain.consumables import ConsumableResource
from chalicelib.domain.jobs import Job
from chalicelib.store.port import Item, ItemStore, Put

CR_PK = "CR"
EDGE_RETENTION_SECONDS = 90 * 24 * 3600  # as store/jobs.py EDGE_RETENTION_SECONDS


def consumer_pk(name: str) -> str:
    return f"CRJ#{name}"


def resource_item(resource: ConsumableResource) -> Item:
    body = dataclasses.asdict(resource)
    body.pop("version")
    return Item(CR_PK, resource.name, body)


def resource_from_item(item: Item) -> ConsumableResource:
    return ConsumableResource(**item.body, version=item.version)


def consumer_items(job: Job, order_key: str) -> list[Item]:
    expires = job.created_at // 1000 + EDGE_RETENTION_SECONDS
    return [
        Item(consumer_pk(consumables.name_of_arn(arn)), order_key, {"job": job.job_id}, expires_at=expires)
        for arn in job.consumable_resources
    ]


class ConsumableRepository:
    def __init__(self, items: ItemStore) -> None:
        self.items = items

    def get(self, name: str) -> ConsumableResource | None:
        item = self.items.get(CR_PK, name)
        return resource_from_item(item) if item else None

    def list_all(self, after: str | None = None, limit: int = 1000) -> list[ConsumableResource]:
        return [resource_from_item(i) for i in self.items.query("main", CR_PK, after=after, limit=limit)]

    def save(self, resource: ConsumableResource) -> ConsumableResource:
        stored = self.items.put(resource_item(resource), resource.version or None)
        return dataclasses.replace(resource, version=stored.version)

    def delete(self, resource: ConsumableResource) -> None:
        self.items.delete(CR_PK, resource.name, resource.version)

    def consumers(self, name: str, after: str | None, limit: int) -> list[Item]:
        """The consumer items of a resource, oldest job first, after the sort key `after`."""
        return self.items.query("main", consumer_pk(name), after=after, limit=limit)

    def unit_moves(self, before: Job | None, after: Job) -> list[Put]:
        """The resource writes that go with saving `after` over `before` (the job as stored): none, the units
        taken (raises consumables.Unavailable when they are not there), or the units returned. A resource deleted
        meanwhile takes nothing back."""
        direction = consumables.moves(before, after)
        if direction == 0:
            return []
        names = {consumables.name_of_arn(arn): n for arn, n in after.consumable_resources.items()}
        found = {i.sk: resource_from_item(i) for i in self.items.batch_get([(CR_PK, name) for name in names])}
        puts: list[Put] = []
        for name, quantity in names.items():
            resource = found.get(name)
            if direction > 0:
                moved = consumables.take(resource, quantity, name)
            elif resource is None:
                continue
            else:
                moved = consumables.give_back(resource, quantity)
            puts.append(Put(resource_item(moved), moved.version))
        return puts
