"""CRM data in: the data contract, the demo data generator, ingestion of messy exports, readers, and the
point-in-time feature builder with its labels.

Imports no other crm-scoring package.
"""
