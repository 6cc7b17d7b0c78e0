"""Readable reports of speech evaluations: ``tables`` (Table 3/4 and Figure 5 per run, beside
the paper's), ``paper`` (the paper's published figures), ``ablation`` (one row per variant run).
"""
