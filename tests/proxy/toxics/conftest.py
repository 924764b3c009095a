import pytest

from ..toxiclab import running_lab


@pytest.fixture
async def lab():
    async with running_lab() as lab:
        yield lab
