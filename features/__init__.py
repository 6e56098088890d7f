"""CRM data contract, demo data, ingestion and feature building for crm-scoring."""
