from .auth import StaffUserFactory
from .crm import CustomerFactory, CustomerMemoFactory, OrderFactory

__all__ = ["StaffUserFactory", "CustomerFactory", "CustomerMemoFactory", "OrderFactory"]
