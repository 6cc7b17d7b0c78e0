"""SpeechOcean762 data layer: sources (release folder, save_to_disk, parquet, hub) -> typed manifests.

- :mod:`.prepare`: ``prepare_speechocean762(source, out_dir, ...)``, behind ``loralab speech prepare``
- :mod:`.records`: ``UtteranceRecord``/``WordRecord``, ``MANIFEST_VERSION``, ``read_manifest``
- :mod:`.audio`: ``load_audio(path, target_sr=16000)`` and the decode/resample/check helpers
- :mod:`.phones`: phone inventory, stress, the pronounced-phone policy, CMUdict + fallback
- :mod:`.synth`: ``synthesize_corpus(out_dir, n, seed)``, behind ``loralab speech synth``
"""
