"""What the tests and the benchmarks share: private services, trees and archives,
processes, accounts. Test modules import from here, never from one another."""
