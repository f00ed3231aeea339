"""v2g_bench.lab"""
