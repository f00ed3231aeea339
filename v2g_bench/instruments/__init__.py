"""v2g_bench.instruments"""
