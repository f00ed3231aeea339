"""v2g_bench.ev"""
