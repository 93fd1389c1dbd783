"""The front panel: buttons, LEDs and buzzer through gpiozero (gpio), the pure LED/buzzer patterns,
and the simulator used with mock pins.
"""
