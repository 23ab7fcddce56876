"""The Ray backend of `spacy fastbioner annotate`: the same shards, formats,
manifest and resume rules as the local backend, on a Ray cluster.

The pending shards become the rows of a Ray Dataset, mapped by an actor pool:
each actor loads the pipeline once, then for each shard reads its records
from the input file (so the inputs must be at the same path on every node,
e.g. a shared file system; a .gz input is decompressed up to each shard's
start, as shards go to actors in any order), annotates them with `nlp.pipe` exactly as the
local backend does and returns the rendered outputs. The driver streams the
results and writes each shard atomically and its manifest line, as the local
backend does; so the output folder needs to exist only where the driver runs.

Ray is an optional dependency: `pip install spacy-fastbioner[ray]`.
"""

import json
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..util.threads import limit_threads
from .formats import InputSource, read_collection_info
from .local import ShardResult, ShardSettings, load_pipeline, process_shard, read_shard
from .shards import Shard


class ShardAnnotator:
    """A Ray Data actor: loads the pipeline once, then annotates shards.

    model (str): The pipeline, a folder (the same path on every node) or an installed package.
    sources (List[Dict[str, Any]]): The inputs, as `InputSource` fields.
    settings (Dict[str, Any]): The `ShardSettings` fields.
    n_threads (int): torch threads of this actor.
    """

    def __init__(self, model: str, sources: List[Dict[str, Any]], settings: Dict[str, Any], n_threads: int = 1) -> None:
        self.settings = ShardSettings(**{**settings, "formats": tuple(settings["formats"])})
        self.nlp = load_pipeline(
            model, self.settings.max_batch_items, self.settings.max_doc_bytes, self.settings.abbreviations
        )
        limit_threads(1, n_threads)
        self.sources = [InputSource(**{**s, "text_fields": tuple(s["text_fields"])}) for s in sources]
        self.collections: Dict[int, Any] = {}

    def __call__(self, row: Dict[str, Any]) -> Dict[str, Any]:
        shard = Shard(**json.loads(row["shard"]))
        source = self.sources[shard.input]
        if shard.input not in self.collections:
            self.collections[shard.input] = read_collection_info(source) if source.format.startswith("bioc") else None
        result = process_shard(
            self.nlp,
            read_shard(source, shard, self.settings.max_doc_bytes),
            self.settings,
            shard_id=shard.id,
            collection=self.collections[shard.input],
            n_pages=int(row["n_pages"]),
        )
        return {"shard": row["shard"], "result": json.dumps(asdict(result))}


def run_ray(
    model: str,
    shards: Sequence[Shard],
    sources: Sequence[InputSource],
    settings: ShardSettings,
    *,
    address: Optional[str] = None,
    n_actors: int = 2,
    n_threads: int = 1,
    pages_for: Callable[[Shard], int],
    on_result: Callable[[Shard, ShardResult], None],
) -> None:
    """Annotate shards on Ray Data with a pool of actors.

    model (str): The pipeline (folder or package), loaded by each actor.
    shards (Sequence[Shard]): The shards to do.
    sources (Sequence[InputSource]): The inputs, by `shard.input`.
    settings (ShardSettings): The run's output settings.
    address (Optional[str]): The cluster ("auto", "ray://host:10001", "host:6379");
        None starts a local Ray unless one is running in this process already.
    n_actors (int): Actors in the pool (each annotates one shard at a time).
    n_threads (int): CPUs (and torch threads) per actor.
    pages_for (Callable[[Shard], int]): How many displaCy pages a shard renders.
    on_result (Callable[[Shard, ShardResult], None]): Called with each finished shard, as results arrive.
    """
    import logging

    import ray

    if not shards:
        return
    # Our own progress bar counts documents and words; Ray Data's would be a second one.
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if not ray.is_initialized():
        ray.init(address=address, runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}}, log_to_driver=False)
    rows = [{"shard": json.dumps(shard.to_dict()), "n_pages": pages_for(shard)} for shard in shards]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
        ShardAnnotator,  # type: ignore[arg-type]  # a callable class: Ray makes an actor pool of it
        fn_constructor_kwargs={
            "model": model,
            "sources": [{**asdict(s), "text_fields": list(s.text_fields)} for s in sources],
            "settings": {**asdict(settings), "formats": list(settings.formats)},
            "n_threads": n_threads,
        },
        compute=ray.data.ActorPoolStrategy(size=max(1, min(n_actors, len(rows)))),
        num_cpus=n_threads,
    )
    by_id = {shard.id: shard for shard in shards}
    for row in dataset.iter_rows():
        shard = by_id[json.loads(row["shard"])["id"]]
        data = json.loads(row["result"])
        pages = [tuple(page) for page in data["pages"]]
        result = ShardResult(data["outputs"], data["errors"], data["counts"], pages, data.get("deleted", []))
        on_result(shard, result)
