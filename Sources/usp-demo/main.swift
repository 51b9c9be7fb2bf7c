print("usp-demo")
