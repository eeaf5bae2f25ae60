"""Run under torchrun with 2 processes: checks that the trainer's data-parallel pieces shard the data and average
gradients. Prints one JSON line from the main process."""

import json
import sys

import torch
from accelerate import Accelerator

from textvae import BaseVAE, load_config, make_loader, prepare_data

config = load_config(sys.argv[1], sys.argv[2:])
accelerator = Accelerator(cpu=True)
torch.manual_seed(0)
data = prepare_data(config.data, config.model.max_length, overlong=config.model.overlong)
model = BaseVAE.from_config(data.model_config(config), data.tokenizer)
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
loader = make_loader(data.datasets["train"], data.tokenizer, config.data.batch_size, shuffle=True, seed=0)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
torch.manual_seed(accelerator.process_index)  # different z samples per process: only gradient averaging syncs them
batch = next(iter(loader))
output = model(batch, step=0)
accelerator.backward(output.loss)
optimizer.step()
first_rows = accelerator.gather(batch["input_ids"][:1, :6].contiguous())
checksums = accelerator.gather(torch.stack([p.detach().double().sum() for p in model.parameters()]).unsqueeze(0))
if accelerator.is_main_process:
    print(json.dumps({
        "num_processes": accelerator.num_processes,
        "first_rows_differ": not torch.equal(first_rows[0], first_rows[1]),
        "parameters_equal": torch.allclose(checksums[0], checksums[1]),
    }))
