"""Training, evaluation, registry promotion and segmentation for crm-scoring."""
