"""v2g_bench.exi"""
