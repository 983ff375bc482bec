"""einvoice: an e-invoice processing engine for Peppol BIS Billing 3.0 / EN 16931 UBL documents."""

__version__ = "0.1.0"
