"""The PyTorch stack as a peer of `cargo xtask bench`: torch, transformers, peft and
sentence-transformers on the CPU, driven by the Rust runner so that its timings alternate with
ragtune's on the same data in one run.

    torch_peer.py --serve

Prints one header object (library versions, threads, the CPU kernels torch picked), then answers
one JSON line per command line on stdin. Each set-up command makes an operation current, checks
what can be checked on this side and returns what the runner checks against ragtune; `time R`
then times R calls of the current operation:

  `sgemm M,N,K`          torch.matmul of seeded f32 operands; {"rel_err"} against f64 on 16 rows
  `llama DIR`            transformers' LlamaForCausalLM from a Hugging Face folder, f32, eval
  `prefill T,T,...`      one forward of the prompt into a fresh cache (logits of the last token
                         only, as ragtune's row); {"last_logits": [...]}
  `decode T,T,...`       prefills the prompt, then each call is one greedy-decode step (one new
                         token into the growing cache); {"step_rel_err"}: a step after the
                         prompt's first n-1 tokens against the full prompt's last logits
  `lora B,S`             peft LoRA r=16, alpha 32, all seven projections, no dropout, AdamW
                         lr 1e-4; each call is one training step on the seeded B x S batch the
                         runner also uses; {"first_loss"}
  `embed DIR BATCH FILE` sentence-transformers on the texts (a JSON list) in FILE; each call
                         encodes them all; {"embeddings": [[...] x 4]} (the first four, unit
                         norm) for the runner's check
  `time R`               {"times": [R seconds]}
  `quit`

Threads: the runner sets OMP_NUM_THREADS/MKL_NUM_THREADS to its own count; torch.set_num_threads
follows it.
"""

import json
import os
import sys
import time

import numpy as np
import torch


def threads():
    return int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()


def header():
    versions = {"torch": torch.__version__}
    for mod in ("transformers", "peft", "sentence_transformers"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = None
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001 - only a label
        capability = "unknown"
    return {**versions, "threads": torch.get_num_threads(), "cpu_capability": capability}


def ids_csv(arg):
    return torch.tensor([[int(t) for t in arg.split(",")]], dtype=torch.long)


class Peer:
    def __init__(self):
        self.op = None
        self.model = None

    def sgemm(self, arg):
        m, n, k = (int(x) for x in arg.split(","))
        g = torch.Generator().manual_seed(2024)
        a = torch.rand((m, k), generator=g) * 2 - 1
        b = torch.rand((k, n), generator=g) * 2 - 1
        c = torch.empty((m, n))
        torch.matmul(a, b, out=c)
        rows = torch.linspace(0, m - 1, min(16, m)).long()
        want = a[rows].double() @ b.double()
        rel = float(torch.linalg.norm(c[rows].double() - want) / torch.linalg.norm(want).clamp_min(1e-300))
        self.op = lambda: torch.matmul(a, b, out=c)
        return {"m": m, "n": n, "k": k, "rel_err": rel}

    def llama(self, arg):
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(arg, dtype=torch.float32, attn_implementation="sdpa")
        self.model.eval()
        return {"params": sum(p.numel() for p in self.model.parameters())}

    def _forward(self, ids, cache):
        with torch.inference_mode():
            out = self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return out.logits[0, -1]

    def prefill(self, arg):
        from transformers import DynamicCache

        ids = ids_csv(arg)
        last = self._forward(ids, DynamicCache())
        self.op = lambda: self._forward(ids, DynamicCache())
        return {"last_logits": last.tolist()}

    def decode(self, arg):
        from transformers import DynamicCache

        ids = ids_csv(arg)
        full = self._forward(ids, DynamicCache()).double()
        cache = DynamicCache()
        self._forward(ids[:, :-1], cache)
        stepped = self._forward(ids[:, -1:], cache).double()
        rel = float(torch.linalg.norm(stepped - full) / torch.linalg.norm(full))
        vocab = self.model.config.vocab_size
        state = {"step": 0}

        def step():
            state["step"] += 1
            self._forward(torch.tensor([[(state["step"] * 31) % vocab]]), cache)

        self.op = step
        return {"step_rel_err": rel}

    def lora(self, arg):
        from peft import LoraConfig, get_peft_model

        b, s = (int(x) for x in arg.split(","))
        vocab = self.model.config.vocab_size
        ids = torch.tensor([[(i * 7919 + t * 104729) % vocab for t in range(s)] for i in range(b)])
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=targets, bias="none")
        model = get_peft_model(self.model, config)
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def step():
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(loss)

        first = step()
        self.op = step
        return {"first_loss": first, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad)}

    def embed(self, arg):
        from sentence_transformers import SentenceTransformer

        folder, batch, path = arg.split(" ", 2)
        with open(path, encoding="utf-8") as f:
            texts = json.load(f)
        model = SentenceTransformer(folder, device="cpu")

        def encode():
            return model.encode(texts, batch_size=int(batch), normalize_embeddings=True, convert_to_numpy=True)

        first = encode()
        self.op = encode
        return {"embeddings": np.asarray(first[:4], dtype=np.float64).tolist(), "count": len(first)}

    def time(self, arg):
        if self.op is None:
            raise ValueError("time before any set-up command")
        times = []
        for _ in range(int(arg)):
            t = time.perf_counter()
            self.op()
            times.append(time.perf_counter() - t)
        return {"times": times}


def serve():
    torch.set_num_threads(threads())
    torch.manual_seed(0)
    print(json.dumps(header()), flush=True)
    peer = Peer()
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "quit":
            return
        f = getattr(peer, cmd, None) if cmd and not cmd.startswith("_") else None
        if f is None:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)
            continue
        try:
            print(json.dumps(f(arg)), flush=True)
        except Exception as e:  # noqa: BLE001 - the runner reports it with the command
            print(json.dumps({"error": f"{cmd}: {type(e).__name__}: {e}"}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        sys.exit(__doc__)
    serve()
